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
  GaussianRolloutKernel,
  gaussianFusedBackends,
  gaussianFusedRollout,
} from './gaussian-rollout-kernel';
