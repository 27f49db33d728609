/**
 * Teacher adapters: analytic Gaussian mixture, tfjs models, latent transformers, guidance, remote teachers.
 * @module @piflow/teachers
 */
export {
  type AnalyticGMTeacher,
  type AnalyticGMTeacherOptions,
  createAnalyticGMTeacher,
} from './analytic-gm-teacher';
export {
  createLatentTransformerTeacher,
  type LatentGuidance,
  type LatentTransformerInputs,
  type LatentTransformerModel,
  type LatentTransformerTeacher,
  type LatentTransformerTeacherOptions,
} from './flux-style/latent-transformer-teacher';
export {
  imagePositionIds,
  type PositionIdStyle,
  packLatents,
  textPositionIds,
  unpackLatents,
} from './flux-style/packing';
export { flux1, type LatentTransformerPreset, qwenImage } from './flux-style/presets';
export { TinyFluxTransformer, type TinyFluxTransformerConfig } from './flux-style/tiny-flux-transformer';
export {
  type ClassifierFreeGuidanceOptions,
  type ConditionDropoutOptions,
  dropCondition,
  withClassifierFreeGuidance,
} from './guidance';
export { type FileSystemIOOptions, fileSystemIO } from './node-file-system-io';
export {
  type DecodeLimits,
  decodeFrame,
  encodeFrame,
  FrameError,
  protocolVersion,
  tensorContentType,
  type WireDType,
  type WireError,
  type WireMetadata,
  type WireTensor,
} from './remote/protocol';
export {
  createRemoteTeacher,
  type RemoteTeacher,
  RemoteTeacherError,
  type RemoteTeacherOptions,
  type RemoteTeacherStats,
} from './remote/remote-teacher';
export { assertCondition, assertTeacherCall, type LocalTeacher } from './teacher-inputs';
export {
  createTfjsModelTeacher,
  type GraphModelLike,
  type LayersModelLike,
  type LoadTfjsModelTeacherOptions,
  loadTfjsModelTeacher,
  type TfjsModel,
  type TfjsModelDescription,
  type TfjsModelInputs,
  type TfjsModelTeacher,
  type TfjsModelTeacherOptions,
} from './tfjs-model-teacher';
