export {
  createDXFamily,
  type DXFamily,
  type DXFusedRollout,
  type DXMode,
  type DXParamShapeOptions,
  type DXParams,
  DXPolicy,
  type DXPolicyOptions,
  type DXPolicyState,
  type DXUParams,
  type DXX0Params,
  dx,
  registerDXFusedRollout,
} from './dx-policy';
export { type DXRolloutPlan, planDXRollout } from './kernels/dx-fused-kernel';
