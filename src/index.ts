/**
 * diffssl: text-free diffusion models as visual feature extractors, in TensorFlow.js.
 *
 * The one entry point is {@link extractFeatures}; {@link ADMUNet} is guided-diffusion's U-Net with
 * block hooks; {@link useBestBackend} picks the fastest tfjs backend present.
 * @packageDocumentation
 */
export { ADMUNet } from './unet/admUnet.js';
export { SeededRandom } from './random.js';
export type { ConvAlgorithm, ForwardOptions, ForwardResult, LoadOptions, LoadProgress, ModelOptions, ReferenceTensor } from './unet/admUnet.js';
export type { WeightOptions } from './unet/weightStore.js';
export { initThreadedWasm, THREADED_WASM_VERSION } from './wasmThreads.js';
export type { ThreadedWasmOptions, ThreadedWasmResult } from './wasmThreads.js';
export type { BlockInfo } from './unet/architecture.js';
export { resolveConfig } from './unet/config.js';
export type { ModelSpec, ReferenceFlags, ResolvedConfig, UNetConfig } from './unet/config.js';
export { PRESETS } from './unet/presets.js';
export type { PresetName } from './unet/presets.js';
export { noiseSchedule, qSample } from './unet/schedule.js';
export type { NoiseSchedule } from './unet/schedule.js';
export { timestepEmbedding } from './unet/timestepEmbedding.js';
export { extractFeatures, FeatureSet } from './features.js';
export type { ExtractOptions } from './features.js';
export { adaptiveAvgPool2d } from './ops/adaptiveAvgPool.js';
export { useBestBackend } from './backend.js';
export type { BackendAttempt, BackendChoice, BackendOptions } from './backend.js';
export { SafetensorsReader, readSafetensors, writeSafetensors, serializeSafetensors } from './io/safetensors.js';
export type { ReadTensor, SafetensorsDtype, TensorData, TensorInfo, TensorToWrite, TensorsToWrite } from './io/safetensors.js';
export { TorchCheckpointReader } from './io/pytorch.js';
export type { TorchDtype, TorchOpenOptions, TorchTensor, TorchTensorInfo } from './io/pytorch.js';
export { writeSafetensorsStream } from './io/safetensorsStream.js';
export type { StreamDtype, StreamTensor, StreamWriteOptions } from './io/safetensorsStream.js';
export { linearCKA, MinibatchCKA, ckaMatrix, CKAMatrix, hsic0, hsic1, ckaHeatmapPNG, writeCKAHeatmap, ckaMatrixJSON, writeCKAJSON } from './cka/index.js';
export type { CKAOptions, MinibatchCKAOptions, CKAMatrixOptions, LabelledMaps, RepresentationList, HSICTerms, HeatmapOptions, CKAMatrixJSON, CKAMatrixJSONOptions, NestedArray, Representation, ShapedData } from './cka/index.js';
export { Tokenizer } from './heads/tokenizer.js';
export type { NormType, TokenizerConfig } from './heads/tokenizer.js';
export { AttentionHead } from './heads/attention.js';
export type { AttentionHeadConfig } from './heads/attention.js';
export { parseFusionArc, formatFusionArc, attentionArc } from './heads/fusionArc.js';
export type { DenseActivation, FusionArc, FusionLayer } from './heads/fusionArc.js';
export { LinearHead, MLPHead, parseHeadArc } from './heads/linear.js';
export type { LinearHeadConfig, MLPHeadConfig } from './heads/linear.js';
export type { ForwardPassOptions, Tap } from './heads/layers.js';
export type { CountEntry, FloatEntry, Layout as StateLayout, LoadWeightsOptions, StateEntry } from './heads/state.js';
export type { Labels } from './train/labels.js';
export { DifFormer } from './fusion/difformer.js';
export type { DifFormerConfig, FusionBlock, FusionInput } from './fusion/difformer.js';
export { DifFeed, feedbackLinks, parseFeedbackArch } from './feedback/difffeed.js';
export type { DifFeedConfig, DifFeedForwardOptions, DifFeedResult, FeedbackLink, FeedbackStrategy, FeedbackStrategyOptions } from './feedback/difffeed.js';
export { fromReference, DiffSSLModel } from './reference.js';
export type { FinetuneArgs, FromReferenceOptions, LogitsOptions } from './reference.js';
export { matMul2d, dense } from './ops/dense.js';
export { multiHeadAttention } from './ops/attention.js';
export { noGrad } from './ops/noGrad.js';
export { train, trainStep, evaluate } from './train/trainer.js';
export type { TrainOptions, TrainResult, StepProgress, EpochReport, EvalResult, CheckpointOptions } from './train/trainer.js';
export type { TrainableModel, LogitsCallOptions } from './train/model.js';
export { crossEntropy } from './train/loss.js';
export type { CrossEntropyOptions } from './train/loss.js';
export { topKAccuracy, topKCorrect } from './train/accuracy.js';
export { sgd, momentum, adam, makeOptimizer, getLearningRate, setLearningRate, StepLR, referenceRecipe } from './train/optimizers.js';
export type { OptimizerSpec, SgdSpec, MomentumSpec, AdamSpec, LRSchedule, StepLROptions, ReferenceRecipe } from './train/optimizers.js';
export { ensureGradients } from './train/gradients.js';
export { tensorDataset } from './train/data.js';
export type { Dataset, Batch, BatchContext } from './train/data.js';
export { imagesFromTensor } from './train/images.js';
export type { ImageSource, LabelledImage } from './train/images.js';
export { centerCrop, randomCropFlip } from './train/augment.js';
export type { CropFlipOptions } from './train/augment.js';
export { onTheFlyImages, onTheFlyFeatures } from './train/onTheFly.js';
export type { OnTheFlyImagesOptions, OnTheFlyFeaturesOptions } from './train/onTheFly.js';
export { cacheFeatures, FeatureCache } from './train/featureCache.js';
export type { CacheOptions } from './train/featureCache.js';
export { KNN, knnEvaluate, poolFeatures } from './train/knn.js';
export type { KnnOptions, KnnScore } from './train/knn.js';
export { CheckpointError, DiffsslError, InputError, WeightsError } from './errors.js';
