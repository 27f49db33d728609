/**
 * The π-Flow core: conventions, time warps, schedules, the policy plugin contract and registry, rollout,
 * the few-step sampler and the exact analytic Gaussian-mixture flow.
 * @module @piflow/core
 */

export { AdamW, type AdamWOptions, type AdamWState, cosineDecay } from './adamw';
export {
  type AnalyticGMFlow,
  type AnalyticGMFlowOptions,
  createAnalyticGMFlow,
  type X0GaussianMixture,
} from './analytic-gm-flow';
export { isAtomicWriteTemp, writeFileAtomic } from './atomic-write';
export {
  addNoise,
  assertSigma,
  type PredictionType,
  predictionToVelocity,
  predictionTypes,
  type Sigma,
  type SigmaRange,
  sigmaColumn,
  sigmaValues,
  sigmaVector,
  velocityFromX0,
  velocityToPrediction,
  x0FromVelocity,
} from './conventions';
export { detachParams, detachTensor } from './detach';
export { EMA, type EMAOptions, type EMAState } from './ema';
export { InvalidArgumentError, PiflowError, SyncUnavailableError } from './errors';
export {
  describeFamilyOption,
  parseFamilyOptionValue,
  resolveFamilyOptions,
} from './family-options';
export {
  type FlowMapSchedule,
  type FlowMapScheduleOptions,
  flowMapSchedule,
  flowMapStep,
  rawTimeOf,
  type StochasticityH,
} from './flow-map-schedule';
export {
  canFuseRollout,
  FusedRolloutDeclined,
  hasFusedRolloutKernel,
  runFusedRollout,
} from './fused-rollout';
export { type KernelBackend, type KernelIO, kernelIO } from './kernel-io';
export {
  type FamilyOptionSpec,
  type FamilyOptionSpecs,
  type FamilyOptionValues,
  type FusedRolloutCall,
  type FusedRolloutKernel,
  type HeadOutputSpec,
  LOSS_WEIGHTINGS,
  type LossWeighting,
  type ParamShapeOptions,
  POLICY_SPECIFICATION_VERSION,
  type PolicyFamily,
  type SamplingPolicyContext,
  type StudentHeadContext,
  type StudentHeadSpec,
  type TrainingPolicyContext,
} from './policy-family';
export {
  createPolicyRegistry,
  familiesFromModule,
  familyMlpDepth,
  isPolicyFamily,
  type PolicyRegistry,
  UnknownPolicyFamilyError,
} from './policy-registry';
export { runQueriesAsync, runQueriesSync } from './query-generator';
export { createRandom, Random, type RandomState } from './random';
export { registerGradients } from './register-gradients';
export {
  type RolloutOptions,
  type RolloutRawSteps,
  rollout,
  rolloutOpByOp,
  rolloutRawSteps,
  rolloutSigmaGrid,
  roundHalfEven,
  substepCount,
  type VelocityField,
} from './rollout';
export {
  type SampleOptions,
  type SampleStepInfo,
  type SampleTeacherOptions,
  sample,
  sampleTeacher,
  teacherSigmas,
} from './sample';
export { type DynamicShiftOptions, dynamicShift, unwarp, warp } from './time-warp';
export {
  type Condition,
  disposeParams,
  type Policy,
  type RolloutSegment,
  type Student,
  type Teacher,
  type TeacherMetadata,
  type TrainableStudent,
} from './types';
export {
  assertNumber,
  assertNumbers,
  assertOneOf,
  assertTensor,
  assertTensorValues,
  describeValue,
  isTensor,
  type NumberExpectation,
  type TensorExpectation,
  type TensorValueExpectation,
} from './validation';
export {
  installWasmBatchMatMulFix,
  isWasmBatchMatMulFixInstalled,
  uninstallWasmBatchMatMulFix,
} from './wasm-batch-mat-mul';
