import * as tf from '@tensorflow/tfjs-core';

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
