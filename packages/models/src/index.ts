export {
  type Backbone,
  type BackboneOutput,
  createMLPBackbone,
  createUNetBackbone,
  type MLPBackboneOptions,
  type UNetBackboneOptions,
} from './backbone';
export { countFlops, type FlopCount, kernelFlops } from './flops';
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
  sinusoidalEmbedding,
  TIME_SCALE,
} from './layers';
export {
  buildModel,
  describeModel,
  encodeModelWeights,
  encodeWeights,
  type FamilySource,
  type LoadModelOptions,
  loadModel,
  loadModelDirectory,
  loadModelFrom,
  loadModelFromUrl,
  type ManifestFamily,
  type ModelFileJSON,
  type ModelManifest,
  modelArtifacts,
  modelFileJSON,
  modelFromArtifacts,
  SAFETENSORS_FILE,
  type StoredModel,
  saveModel,
  saveModelDirectory,
  upgradeManifest,
} from './model-io';
export {
  createStudent,
  initStudentFromTeacher,
  type PolicyStudent,
  type StudentOptions,
  type TeacherInitOptions,
} from './policy-heads';
export {
  decodeSafetensors,
  encodeSafetensors,
  type SafetensorsEntry,
  type SafetensorsFile,
} from './safetensors';
export { composedSilu, silu } from './silu';
export {
  type FlowBatch,
  type FlowStepInfo,
  flowModelOptimizer,
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
  getWeights,
  setWeights,
} from './weights';
