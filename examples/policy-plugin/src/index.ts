export {
  createGaussianFamily,
  type GaussianFamily,
  type GaussianParams,
  GaussianPolicy,
  type GaussianPolicyOptions,
  type GaussianUParams,
  type GaussianX0Params,
  gaussian,
} from './gaussian-policy';
export {
  GAUSSIAN_FUSED_ROLLOUT_KERNEL,
  gaussianFusedRolloutCall,
  gaussianFusedRolloutKernel,
} from './gaussian-rollout-kernel';
