import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  canFuseRollout,
  FusedRolloutDeclined,
  hasFusedRolloutKernel,
  runFusedRollout,
} from './fused-rollout';
import type { FusedRolloutCall, FusedRolloutKernel } from './policy-family';
import { useBackend } from './testing/backends';

const NAME = 'PiflowTestFusedRollout';

type CpuLike = {
  readSync(dataId: tf.DataId): Float32Array;
  makeTensorInfo(s: number[], d: string, v: Float32Array): tf.TensorInfo;
};

/** A kernel that adds attrs.offset to its input x, counting its runs. */
function addKernel(counter: { runs: number }): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const be = backend as unknown as CpuLike;
    const x = inputs.x!;
    const values = be.readSync(x.dataId).map((v) => v + (attrs!.offset as number));
    counter.runs++;
    return be.makeTensorInfo(x.shape, 'float32', values);
  };
}

function callOf(kernel: FusedRolloutKernel, x: tf.Tensor, offset = 1): FusedRolloutCall {
  return { kernel, inputs: { x }, attrs: { offset } };
}

describe('fused-rollout dispatch', () => {
  beforeAll(() => useBackend('cpu'));
  afterEach(() => {
    if (tf.getKernel(NAME, 'cpu')) tf.unregisterKernel(NAME, 'cpu');
  });

  it('canFuseRollout: a float32 tensor of x_src’s shape (on any backend, under a tape too)', () => {
    const xSrc = tf.zeros([2, 3]);
    const x = tf.ones([2, 3]);
    expect(canFuseRollout(x, xSrc)).toBe(true);
    const wrong = tf.ones([3, 2]);
    const ints = tf.ones([2, 3], 'int32');
    expect(canFuseRollout(wrong, xSrc)).toBe(false);
    expect(canFuseRollout(ints, xSrc)).toBe(false);
    let underTape: boolean | undefined;
    tf.grad((t: tf.Tensor) => {
      underTape = canFuseRollout(x, xSrc);
      return tf.sum(t);
    })(x).dispose();
    expect(underTape).toBe(true); // the tape is runFusedRollout's concern
    tf.dispose([xSrc, x, wrong, ints]);
  });

  it("registers the family's own kernel for the active backend on first use, once, and runs it", () => {
    const counter = { runs: 0 };
    const kernel: FusedRolloutKernel = { kernelName: NAME, kernels: { cpu: addKernel(counter) } };
    expect(tf.getKernel(NAME, 'cpu')).toBeUndefined();
    expect(hasFusedRolloutKernel(kernel)).toBe(true); // provided, not yet registered
    const x = tf.tensor2d([[1, 2]]);
    const y = runFusedRollout(callOf(kernel, x, 10))!;
    expect(Array.from(y.dataSync())).toEqual([11, 12]);
    expect(tf.getKernel(NAME, 'cpu')?.kernelFunc).toBe(kernel.kernels!.cpu);
    const z = runFusedRollout(callOf(kernel, x, 1))!;
    expect(Array.from(z.dataSync())).toEqual([2, 3]);
    expect(counter.runs).toBe(2);
    tf.dispose([x, y, z]);
  });

  it('a kernel already registered under the name (e.g. by a backend package) wins over the family’s own', () => {
    const own = { runs: 0 };
    const registered = { runs: 0 };
    tf.registerKernel({ kernelName: NAME, backendName: 'cpu', kernelFunc: addKernel(registered) });
    const kernel: FusedRolloutKernel = { kernelName: NAME, kernels: { cpu: addKernel(own) } };
    const x = tf.tensor1d([0]);
    const y = runFusedRollout(callOf(kernel, x))!;
    expect([own.runs, registered.runs]).toEqual([0, 1]);
    tf.dispose([x, y]);
  });

  it('no kernel on the active backend (none registered, none provided): undefined', () => {
    const counter = { runs: 0 };
    const x = tf.tensor1d([0]);
    expect(runFusedRollout(callOf({ kernelName: NAME }, x))).toBeUndefined();
    const webgpuOnly: FusedRolloutKernel = { kernelName: NAME, kernels: { webgpu: addKernel(counter) } };
    expect(hasFusedRolloutKernel(webgpuOnly)).toBe(false);
    expect(runFusedRollout(callOf(webgpuOnly, x))).toBeUndefined();
    expect(tf.getKernel(NAME, 'cpu')).toBeUndefined();
    expect(tf.getKernel(NAME, 'webgpu')).toBeUndefined(); // only the active backend's kernel is registered
    expect(counter.runs).toBe(0);
    x.dispose();
  });

  it('nothing runs while a gradient tape records', () => {
    const counter = { runs: 0 };
    const kernel: FusedRolloutKernel = { kernelName: NAME, kernels: { cpu: addKernel(counter) } };
    const x = tf.tensor1d([1, 2]);
    let inside: tf.Tensor | undefined | null = null;
    tf.grad((t: tf.Tensor) => {
      inside = runFusedRollout(callOf(kernel, t));
      return tf.sum(t);
    })(x).dispose();
    expect(inside).toBeUndefined();
    expect(counter.runs).toBe(0);
    x.dispose();
  });

  it('a kernel that throws FusedRolloutDeclined gives undefined; any other error propagates', () => {
    const x = tf.tensor1d([1]);
    const declining: FusedRolloutKernel = {
      kernelName: NAME,
      kernels: {
        cpu: () => {
          throw new FusedRolloutDeclined('too large to unroll');
        },
      },
    };
    const before = tf.memory().numTensors;
    expect(runFusedRollout(callOf(declining, x))).toBeUndefined();
    expect(tf.memory().numTensors).toBe(before);
    tf.unregisterKernel(NAME, 'cpu');
    const broken: FusedRolloutKernel = {
      kernelName: NAME,
      kernels: {
        cpu: () => {
          throw new Error('a bug');
        },
      },
    };
    expect(() => runFusedRollout(callOf(broken, x))).toThrow('a bug');
    x.dispose();
  });

  it('under tf.profile (kernels run in an async timer there) too: declined → undefined, errors propagate', async () => {
    const x = tf.tensor1d([1, 2]);
    const counter = { runs: 0 };
    const working: FusedRolloutKernel = { kernelName: NAME, kernels: { cpu: addKernel(counter) } };
    const ran = await tf.profile(() => runFusedRollout(callOf(working, x))!);
    expect(ran.kernelNames).toEqual([NAME]);
    expect(Array.from((ran.result as tf.Tensor).dataSync())).toEqual([2, 3]);
    expect(tf.getKernel(NAME, 'cpu')?.kernelFunc).toBe(working.kernels!.cpu); // the registration is back
    tf.dispose(ran.result as tf.Tensor);
    tf.unregisterKernel(NAME, 'cpu');

    const declining: FusedRolloutKernel = {
      kernelName: NAME,
      kernels: {
        cpu: () => {
          throw new FusedRolloutDeclined('no SIMD');
        },
      },
    };
    const before = tf.memory().numTensors;
    let result: tf.Tensor | undefined | null = null;
    const declined = await tf.profile(() => {
      result = runFusedRollout(callOf(declining, x));
      return tf.add(x, 1); // what the caller does instead
    });
    expect(result).toBeUndefined();
    expect(declined.kernelNames).toEqual(['Add']); // the declined call left no entry
    tf.dispose(declined.result as tf.Tensor);
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.getKernel(NAME, 'cpu')?.kernelFunc).toBe(declining.kernels!.cpu);
    tf.unregisterKernel(NAME, 'cpu');

    const broken: FusedRolloutKernel = {
      kernelName: NAME,
      kernels: {
        cpu: () => {
          throw new Error('a bug');
        },
      },
    };
    let error: unknown;
    await tf
      .profile(() => {
        try {
          runFusedRollout(callOf(broken, x));
        } catch (e) {
          error = e;
        }
        return tf.clone(x);
      })
      .then((info) => tf.dispose(info.result as tf.Tensor));
    expect((error as Error).message).toBe('a bug');
    x.dispose();
  });
});
