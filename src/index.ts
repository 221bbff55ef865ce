/**
 * diffssl: text-free diffusion models as visual feature extractors, in TensorFlow.js.
 *
 * The one entry point is {@link extractFeatures}; {@link ADMUNet} is guided-diffusion's U-Net with
 * block hooks; {@link useBestBackend} picks the fastest tfjs backend present.
 * @packageDocumentation
 */
export { ADMUNet } from './unet/admUnet.js';
export type { ForwardOptions, ForwardResult, LoadOptions, LoadProgress, ReferenceTensor } from './unet/admUnet.js';
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
export { CheckpointError, DiffsslError, InputError, WeightsError } from './errors.js';
