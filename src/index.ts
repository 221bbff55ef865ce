/**
 * diffssl: text-free diffusion models as visual feature extractors, in TensorFlow.js.
 *
 * The one entry point is {@link extractFeatures}; {@link ADMUNet} is guided-diffusion's U-Net with
 * block hooks; {@link useBestBackend} picks the fastest tfjs backend present.
 * @packageDocumentation
 */

// Backbone: guided-diffusion's ADM U-Net, its flags, presets and noise schedule.
export { ADMUNet } from './unet/admUnet.js';
export type {
  ForwardOptions,
  ForwardResult,
  LoadOptions,
  LoadProgress,
  ModelOptions,
  ReferenceTensor,
} from './unet/options.js';
export type { ConvAlgorithm } from './unet/runtime/convAlgorithm.js';
export type { ForwardState } from './unet/runtime/batchParts.js';
export type { WeightOptions } from './unet/runtime/weightStore.js';
export type { BlockInfo } from './unet/architecture.js';
export { resolveConfig } from './unet/config.js';
export type { ModelSpec, ResolvedConfig, UNetConfig } from './unet/config.js';
export type { ReferenceFlags } from './unet/flags.js';
export { PRESETS } from './unet/presets.js';
export type { PresetName } from './unet/presets.js';
export { checkImageRange, IMAGE_RANGE_LIMIT, noiseSchedule, qSample } from './unet/schedule.js';
export type { NoiseSchedule } from './unet/schedule.js';
export { timestepEmbedding } from './unet/timestepEmbedding.js';

// Diffusion: the reverse process, DDPM and DDIM sampling.
export {
  ddimStep,
  ddpmStep,
  pMeanVariance,
  qPosteriorMeanVariance,
  sampleDDIM,
  sampleDDPM,
} from './diffusion/sampler.js';
export type {
  DDIMOptions,
  DenoisingModel,
  MeanVariance,
  ModelMeanVariance,
  ModelStepOptions,
  SampleOptions,
  VarianceKind,
} from './diffusion/sampler.js';
export { diffusionTables, spaceTimesteps } from './diffusion/tables.js';
export type { DiffusionTables } from './diffusion/tables.js';
export { loadDefaultBackbone, DEFAULT_BACKBONE } from './defaultBackbone.js';
export type { DefaultBackboneOptions } from './defaultBackbone.js';
export { trainDiffusion, clipByGlobalNorm } from './diffusion/trainDiffusion.js';
export type { DiffusionTrainOptions, DiffusionTrainResult } from './diffusion/trainDiffusion.js';

// Features: f(x0, t, b).
export { FeatureSet } from './features/extractFeatures.js';
export { extractFeatures } from './defaultBackbone.js';
export type { ExtractOptions, FeatureBackbone } from './features/extractFeatures.js';
export {
  extractToDirectory,
  mergeShards,
  ShardedFeatures,
  shardFromEnv,
  parseShard,
  shardRange,
  modelHash,
  SHARDS_ENV,
} from './data/featureShards.js';
export type { ExtractToDirectoryOptions, Shard, ShardResult } from './data/featureShards.js';

// Heads: modules with state, the paper's heads, DifFormer, DifFeed and the reference's classifier.
export { Module } from './nn/module.js';
export type { ForwardPassOptions, Tap } from './nn/layers.js';
export type { CountEntry, FloatEntry, Layout as StateLayout, LoadWeightsOptions, StateEntry } from './nn/state.js';
export { Tokenizer } from './heads/tokenizer.js';
export type { NormType, TokenizerConfig } from './heads/tokenizer.js';
export { AttentionHead } from './heads/attentionHead.js';
export type { AttentionHeadConfig } from './heads/attentionHead.js';
export { parseFusionArc, formatFusionArc, attentionArc } from './heads/fusionArc.js';
export type { DenseActivation, FusionArc, FusionLayer } from './heads/fusionArc.js';
export { LinearHead, MLPHead, parseHeadArc } from './heads/mlpHead.js';
export type { LinearHeadConfig, MLPHeadConfig } from './heads/mlpHead.js';
export { UperHead } from './heads/uperHead.js';
export type { UperHeadConfig } from './heads/uperHead.js';
export { PixelClassifier, PixelMLP } from './heads/pixelClassifier.js';
export type { PixelClassifierConfig } from './heads/pixelClassifier.js';
export { DifFormer } from './fusion/difFormer.js';
export type { DifFormerConfig, FusionBlock, FusionInput } from './fusion/difFormer.js';
export { DifFeed, feedbackLinks, parseFeedbackArch } from './feedback/difFeed.js';
export type {
  DifFeedConfig,
  DifFeedForwardOptions,
  DifFeedResult,
  FeedbackLink,
  FeedbackStrategy,
  FeedbackStrategyOptions,
} from './feedback/difFeed.js';
export { fromReference, DiffSSLModel } from './diffsslModel.js';
export type { FinetuneArgs, FromReferenceOptions, LogitsOptions } from './diffsslModel.js';

// Training: the loop, checkpoints, optimizers and the reference recipes, loss.
export { train, trainStep, evaluate } from './train/trainer.js';
export type {
  TrainOptions,
  TrainResult,
  StepProgress,
  EpochReport,
  EvalResult,
  CheckpointOptions,
} from './train/trainer.js';
export type { TrainableModel, LogitsCallOptions } from './train/trainableModel.js';
export { crossEntropy } from './train/loss.js';
export type { CrossEntropyOptions } from './train/loss.js';
export { pixelCrossEntropy } from './train/segmentationLoss.js';
export type { PixelCrossEntropyOptions } from './train/segmentationLoss.js';
export {
  sgd,
  momentum,
  adam,
  makeOptimizer,
  getLearningRate,
  setLearningRate,
  StepLR,
  referenceRecipe,
} from './train/optimizers.js';
export type {
  OptimizerSpec,
  SgdSpec,
  MomentumSpec,
  AdamSpec,
  LRSchedule,
  StepLROptions,
  ReferenceRecipe,
} from './train/optimizers.js';
export { fineTune, FineTuneModel, GroupedOptimizer, withBatchSeeds } from './train/fineTune.js';
export type {
  FineTuneOptions,
  FineTuneModelOptions,
  FineTuneResult,
  FineTuneHead,
  FineTuneLogitsOptions,
  FineTunePart,
  PartSetting,
  ParamGroup,
  GroupOptimizerSpec,
} from './train/fineTune.js';
export { ensureGradients } from './backend/gradients.js';

// Data: datasets, images (tensors, files, folders, IDX), transforms, features on the fly or cached.
export { segmentationDataset, tensorDataset } from './data/dataset.js';
export type { SegmentationDatasetOptions } from './data/dataset.js';
export { DEFAULT_IGNORE_INDEX } from './data/labels.js';
export type { Masks } from './data/labels.js';
export type { Dataset, Batch, BatchContext } from './data/dataset.js';
export type { Labels } from './data/labels.js';
export { balancedSubset } from './data/subsets.js';
export type { SubsetSize } from './data/subsets.js';
export { imagesFromTensor } from './data/images.js';
export type { ImageSource, LabelledImage } from './data/images.js';
export { centerCrop, randomCropFlip } from './data/transforms.js';
export type { CropFlipOptions } from './data/transforms.js';
export { onTheFlyImages, onTheFlyFeatures } from './data/onTheFly.js';
export type { FeatureSpec, OnTheFlyImagesOptions, OnTheFlyFeaturesOptions } from './data/onTheFly.js';
export { cacheFeatures, FeatureCache } from './data/featureCache.js';
export type { CacheOptions } from './data/featureCache.js';
export { loadFashionMNIST, fashionMNISTMasks, FASHION_MNIST_CLASSES } from './data/fashionMnist.js';
export type {
  FashionMNIST,
  FashionMNISTMaskOptions,
  FashionMNISTOptions,
  FashionMNISTSplit,
} from './data/fashionMnist.js';
export { loadImage, imageFiles, imageFolder, IMAGE_EXTENSIONS } from './data/imageFiles.js';
export type {
  ImageFiles,
  ImageFilesOptions,
  ImageFolder,
  ImageFolderOptions,
  LoadImageOptions,
  OnBadFile,
  SkippedFile,
} from './data/imageFiles.js';
export { idxImages } from './data/idxImages.js';
export type { IdxImages, IdxImagesOptions } from './data/idxImages.js';

// Evaluation: top-k accuracy and the paper's kNN.
export { topKAccuracy, topKCorrect } from './eval/accuracy.js';
export { KNN, knnEvaluate, poolFeatures } from './eval/knn.js';
export { linearProbe } from './eval/linearProbe.js';
export type { LinearProbeOptions, LinearProbeResult } from './eval/linearProbe.js';
export { SegmentationMeter, segmentationScores } from './eval/segmentation.js';
export type { SegmentationMeterOptions, SegmentationScores } from './eval/segmentation.js';
export type { KNNOptions, KNNScore } from './eval/knn.js';

// CKA: linear CKA, its minibatch form, block × block matrices, heatmaps.
export {
  linearCKA,
  MinibatchCKA,
  ckaMatrix,
  MinibatchCKAMatrix,
  hsic0,
  hsic1,
  ckaHeatmapPNG,
  writeCKAHeatmap,
  ckaMatrixJSON,
  writeCKAJSON,
} from './cka/index.js';
export type {
  CKAOptions,
  MinibatchCKAOptions,
  CKAMatrixOptions,
  LabelledMaps,
  RepresentationList,
  HSICTerms,
  HeatmapOptions,
  CKAMatrixJSON,
  CKAMatrixJSONOptions,
  NestedArray,
  Representation,
  ShapedData,
} from './cka/index.js';

// I/O: files from paths, URLs, Blobs or bytes; safetensors, PyTorch checkpoints, IDX (MNIST) files, sample grids and line charts.
export { SafetensorsReader, readSafetensors, writeSafetensors, serializeSafetensors } from './io/safetensors.js';
export type {
  ReadTensor,
  SafetensorsDtype,
  TensorData,
  TensorInfo,
  TensorToWrite,
  TensorsToWrite,
} from './io/safetensors.js';
export { TorchCheckpointReader } from './io/pytorch.js';
export type { TorchDtype, TorchOpenOptions, TorchTensor, TorchTensorInfo } from './io/pytorch.js';
export { writeSafetensorsStream } from './io/safetensorsStream.js';
export { samplesGridPNG, writeSamplesGrid } from './io/imageGrid.js';
export type { GridOptions } from './io/imageGrid.js';
export { lineChartPNG, writeLineChart } from './io/lineChart.js';
export type { LineChartOptions, LineSeries } from './io/lineChart.js';
export type { StreamDtype, StreamTensor, StreamWriteOptions } from './io/safetensorsStream.js';
export { readIdx, readIdxPair, decodeIdx, encodeIdx } from './io/idx.js';
export type { IdxData, IdxDtype, IdxTensor, ReadIdxOptions } from './io/idx.js';
export type { FileInput, WebInput } from './io/webSource.js';

// Backend: choosing one, threaded wasm in Node.
export { useBestBackend } from './backend/useBestBackend.js';
export type { BackendAttempt, BackendChoice, BackendOptions } from './backend/useBestBackend.js';
export { initThreadedWasm, THREADED_WASM_VERSION } from './backend/wasm/threads.js';
export type { ThreadedWasmOptions, ThreadedWasmResult } from './backend/wasm/threads.js';

// Ops: differentiable building blocks with fast gradients on wasm.
export { adaptiveAvgPool2d } from './ops/adaptiveAvgPool.js';
export { interpolateBilinear } from './ops/interpolate.js';
export { matMul2d, dense } from './ops/dense.js';
export { multiHeadAttention } from './ops/multiHeadAttention.js';
export { noGrad } from './ops/noGrad.js';

// Utilities: progress reports, host tensors, seeded randomness.
export type {
  ProgressInfo,
  ProgressCallback,
  ProgressBase,
  LoadProgressInfo,
  WriteProgressInfo,
  ExtractProgressInfo,
  CacheProgressInfo,
  ShardProgressInfo,
  TrainProgressInfo,
  DiffusionTrainProgressInfo,
  SampleProgressInfo,
} from './util/progress.js';
export type { HostData, HostTensor } from './util/hostTensor.js';
export { SeededRandom } from './util/random.js';

// Errors.
export { CheckpointError, DiffSSLError, InputError, ShardError, WeightsError } from './errors.js';
