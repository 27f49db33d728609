import type * as tf from '@tensorflow/tfjs-core';

/**
 * Reads tensors asynchronously, so that later synchronous reads of the same tensors (library code that calls
 * `dataSync`, e.g. when weights are saved) are served from the copy tfjs then keeps on the CPU: tfjs's WebGPU
 * backend cannot read GPU memory synchronously in Node. A no-op cost on the cpu and wasm backends.
 */
export async function readAhead(tensors: readonly tf.Tensor[]): Promise<void> {
  await Promise.all(tensors.map((t) => t.data()));
}

/** A tensor's values as a Float32Array, read asynchronously (works on every backend, WebGPU in Node included). */
export async function readFloats(tensor: tf.Tensor): Promise<Float32Array> {
  const values = await tensor.data();
  return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
}
