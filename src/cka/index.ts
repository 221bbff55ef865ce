/**
 * Linear CKA (Kornblith et al. 2019) for comparing representations: biased and debiased estimators, minibatch
 * accumulation (Nguyen et al. 2021), whole matrices over lists of layers or steps, heatmaps and JSON export.
 * CKA takes tensors or arrays and knows nothing of the models that made them.
 * @module
 */
export { linearCKA } from './linearCKA.js';
export type { CKAOptions } from './linearCKA.js';
export { MinibatchCKA } from './minibatch.js';
export type { MinibatchCKAOptions } from './minibatch.js';
export { MinibatchCKAMatrix, ckaMatrix } from './matrix.js';
export type { CKAMatrixOptions, LabelledMaps, RepresentationList } from './matrix.js';
export { hsic0, hsic1 } from './hsic.js';
export type { HSICTerms } from './hsic.js';
export { ckaHeatmapPNG, writeCKAHeatmap } from './heatmap.js';
export type { HeatmapOptions } from './heatmap.js';
export { ckaMatrixJSON, writeCKAJSON } from './json.js';
export type { CKAMatrixJSON, CKAMatrixJSONOptions } from './json.js';
export type { NestedArray, Representation, ShapedData } from './representation.js';
