/**
 * The DX policy family `dx` and the single-x0 student.
 * @module @piflow/policy-dx
 */
export {
  createDXFamily,
  type DXFamily,
  type DXMode,
  type DXParamShapeOptions,
  type DXParams,
  DXPolicy,
  type DXPolicyOptions,
  type DXPolicyState,
  type DXUParams,
  type DXX0Params,
  dx,
} from './dx-policy';
export {
  DX_FUSED_ROLLOUT_KERNEL,
  type DXFusedRolloutAttrs,
  type DXRolloutPlan,
  dxFusedRolloutAttrs,
  dxFusedRolloutKernel,
  planDXRollout,
} from './kernels/dx-fused-kernel';
export { createSingleX0Student, type SingleX0Params, type SyncVelocityTeacher } from './single-x0-student';
