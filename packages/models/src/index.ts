export {
  type Backbone,
  type BackboneOutput,
  createMLPBackbone,
  createUNetBackbone,
  type MLPBackboneOptions,
  type UNetBackboneOptions,
} from './backbone';
export {
  createFlowModel,
  type FlowModel,
  type FlowModelOptions,
  type FlowTeacherOptions,
  isBackbone,
  isFlowModel,
} from './flow-model';
export {
  type ConvLayer,
  conv3x3,
  createConv3x3,
  createDense,
  type DenseLayer,
  dense,
  type NamedVariable,
  silu,
  sinusoidalEmbedding,
  TIME_SCALE,
} from './layers';
export {
  buildModel,
  describeModel,
  encodeWeights,
  loadModel,
  loadModelDirectory,
  loadModelFromUrl,
  type ModelManifest,
  type StoredModel,
  saveModelDirectory,
} from './model-io';
export {
  createDXStudent,
  createGMStudent,
  type DXHeadParams,
  type DXStudent,
  type DXStudentOptions,
  type GMHeadParams,
  type GMStudent,
  type GMStudentOptions,
  initStudentFromTeacher,
  type PolicyStudent,
  type TeacherInitOptions,
} from './policy-heads';
export {
  clipByGlobalNorm,
  type FlowBatch,
  type FlowStepInfo,
  type SigmaSampling,
  type SigmaSamplingOptions,
  sampleTrainingSigmas,
  type TrainFlowModelOptions,
  type TrainFlowModelResult,
  trainFlowModel,
} from './train-flow-model';
export {
  ensureWasmTrainingKernels,
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
  type WasmTrainingKernelName,
  wasmTrainingKernelNames,
  wasmTrainingKernelsRegistered,
} from './wasm-training-kernels';
export {
  createExponentialMovingAverage,
  type ExponentialMovingAverage,
  getWeights,
  setWeights,
} from './weights';
