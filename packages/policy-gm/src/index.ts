export {
  type GMParams,
  type GMUParams,
  type GMX0Params,
  gmMean,
  gmToX0Space,
  validateGMParams,
} from './gm-params';
export {
  componentDropMask,
  createGMFamily,
  type GMFamily,
  type GMFamilyDefaults,
  type GMFusedRollout,
  type GMParamShapeOptions,
  GMPolicy,
  type GMPolicyOptions,
  type GMPolicyState,
  gm,
  registerGMFusedRollout,
} from './gm-policy';
export { sampleGaussianMixture, sampleGaussianMixtureAsync } from './gm-sample';
