import * as tf from '@tensorflow/tfjs-core';
import { isTensor } from './validation';

/**
 * A new handle on the same data that no gradient flows through: it wraps the tensor's data id (the backend's
 * reference count is raised, as tf.clone does) without recording anything on the gradient tape, and costs
 * no copy. Dispose it separately.
 */
export function detachTensor<T extends tf.Tensor>(tensor: T): T {
  const backend = tf.backend();
  backend.incRef(tensor.dataId);
  return tf
    .engine()
    .makeTensorFromTensorInfo(
      { dataId: tensor.dataId, shape: tensor.shape, dtype: tensor.dtype },
      backend,
    ) as T;
}

/**
 * The params object with every tensor (one level deep) replaced by a detached view of the same data: no
 * gradient flows through it to the original. The caller owns the views (dispose them with `disposeParams`).
 */
export function detachParams<T>(params: T): T {
  if (typeof params !== 'object' || params === null) return params;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(params)) {
    out[key] = isTensor(value) ? detachTensor(value) : value;
  }
  return out as T;
}
