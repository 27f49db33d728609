import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { canFuseRollout, ensureKernel } from './fused-rollout';
import { useBackend } from './testing/backends';

describe('fused-rollout helpers', () => {
  beforeAll(() => useBackend('cpu'));

  it('canFuseRollout: right backend, no tape, float32 of x_src’s shape', () => {
    const xSrc = tf.zeros([2, 3]);
    const x = tf.ones([2, 3]);
    expect(canFuseRollout(x, xSrc, ['cpu', 'wasm'])).toBe(true);
    expect(canFuseRollout(x, xSrc, ['webgpu'])).toBe(false);
    const wrong = tf.ones([3, 2]);
    const ints = tf.ones([2, 3], 'int32');
    expect(canFuseRollout(wrong, xSrc, ['cpu'])).toBe(false);
    expect(canFuseRollout(ints, xSrc, ['cpu'])).toBe(false);
    let underTape: boolean | undefined;
    tf.grad((t: tf.Tensor) => {
      underTape = canFuseRollout(x, xSrc, ['cpu']);
      return tf.sum(t);
    })(x).dispose();
    expect(underTape).toBe(false);
    tf.dispose([xSrc, x, wrong, ints]);
  });

  it('ensureKernel registers once', () => {
    let calls = 0;
    const kernelFunc: tf.KernelFunc = ({ backend }) => {
      calls++;
      const cpu = backend as unknown as {
        makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo;
      };
      return cpu.makeTensorInfo([1], 'float32', new Float32Array([7]));
    };
    ensureKernel('PiflowTestKernel', 'cpu', kernelFunc);
    ensureKernel('PiflowTestKernel', 'cpu', () => {
      throw new Error('the second registration must not replace the first');
    });
    const out = tf.engine().runKernel('PiflowTestKernel', {}, {}) as tf.Tensor;
    expect(Array.from(out.dataSync())).toEqual([7]);
    expect(calls).toBe(1);
    out.dispose();
    tf.unregisterKernel('PiflowTestKernel', 'cpu');
  });
});
