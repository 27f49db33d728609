/**
 * The Gaussian-mixture policy family `gm`.
 * @module @piflow/policy-gm
 */
export {
  type GMParams,
  type GMUParams,
  type GMX0Params,
  gmMean,
  gmToX0Space,
  validateGMParams,
} from './gm-params';
export {
  autoTemperature,
  componentDropMask,
  createGMFamily,
  type GMFamily,
  type GMFamilyDefaults,
  type GMParamShapeOptions,
  GMPolicy,
  type GMPolicyOptions,
  type GMPolicyState,
  gm,
} from './gm-policy';
export { sampleGaussianMixture, sampleGaussianMixtureAsync } from './gm-sample';
export {
  GM_FUSED_ROLLOUT_KERNEL,
  type GMFusedRolloutAttrs,
  gmFusedRolloutAttrs,
  gmFusedRolloutKernel,
  gmFusedRolloutSegment,
} from './kernels/gm-fused-kernel';
