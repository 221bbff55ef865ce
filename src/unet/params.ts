import type * as tf from '@tensorflow/tfjs-core';

/**
 * Looks a weight up by its reference state-dict name, already in tfjs layout (HWIO convs,
 * `[in, out]` matrices). Layers take this rather than a map so that where weights live
 * (resident, streamed) stays the model's business.
 */
export type Params = (name: string) => tf.Tensor;
