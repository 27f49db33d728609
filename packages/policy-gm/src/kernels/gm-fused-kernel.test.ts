import {
  createRandom,
  FusedRolloutDeclined,
  InvalidArgumentError,
  type Random,
  type RolloutSegment,
  rollout,
  runFusedRollout,
} from '@piflow/core';
import { countLeaks, FusedKernelSpy, relativeError, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type GMPolicy, gm } from '../index';
import {
  GM_FUSED_ROLLOUT_KERNEL,
  type GMFusedImplementation,
  gmFusedRolloutKernel,
  runGMRolloutArrays,
  setGMFusedImplementation,
} from './gm-fused-kernel';
import { gmRolloutJS } from './gm-rollout-js';
import { type GMRolloutArrays, planGMRollout } from './gm-rollout-plan';
import { generateGMRolloutModule, simdKernelFits, wasmSimdSupported } from './gm-rollout-simd';

/** Fused vs op-by-op tolerance (relative L2, float32 over up to 64 substeps). */
const TOLERANCE = 1e-4;

function makePolicy(
  shape: number[],
  K: number,
  random: Random,
  sigmaSrc: number[],
  options: { temperature?: number; dropout?: number } = {},
) {
  const positions = shape.slice(0, -1);
  const C = shape[shape.length - 1]!;
  const params = {
    space: 'u' as const,
    means: random.normalTensor([...positions, K, C]),
    logweights: tf.tidy(() => tf.mul(random.normalTensor([...positions, K]), 0.7)),
    logstd: tf.tidy(() => tf.sub(tf.mul(random.normalTensor([shape[0]!]), 0.2), 0.8)) as tf.Tensor1D,
  };
  const xSrc = random.normalTensor(shape);
  const sigmaSrcT = tf.tensor1d(sigmaSrc);
  const policy = gm.create(params, xSrc, sigmaSrcT, { ...options, random });
  tf.dispose([params.means, params.logweights, params.logstd, xSrc, sigmaSrcT]);
  return policy;
}

/**
 * `rollout` through core's dispatch (the fused kernel, which must have run exactly once: counted by `spy`)
 * and the op-by-op reference over the same segment.
 */
function fusedAndReference(
  spy: FusedKernelSpy,
  policy: GMPolicy,
  x: tf.Tensor,
  sigmaSrc: number[],
  sigmaDst: number[],
  shift = 1,
) {
  const src = tf.tensor1d(sigmaSrc);
  const dst = tf.tensor1d(sigmaDst);
  const options = { sigmaSrc: src, sigmaDst: dst, substeps: 64, shift };
  const before = spy.runs;
  const fused = rollout(policy, x, options);
  const runs = spy.runs - before;
  const reference = rollout(policy, x, { ...options, fused: false });
  const result = {
    fused: fused.dataSync().slice(),
    reference: reference.dataSync().slice(),
    shape: fused.shape,
  };
  tf.dispose([fused, reference, src, dst]);
  expect(runs, `runs of ${GM_FUSED_ROLLOUT_KERNEL} on ${spy.backend}`).toBe(1);
  return result;
}

const cases: {
  label: string;
  shape: number[];
  K: number;
  sigmaSrc: number[];
  sigmaDst: number[];
  options?: { temperature?: number; dropout?: number };
  shift?: number;
}[] = [
  { label: 'K = 1', shape: [2, 5, 3], K: 1, sigmaSrc: [0.9, 0.6], sigmaDst: [0, 0.3] },
  { label: 'C = 1, K = 4', shape: [3, 7, 1], K: 4, sigmaSrc: [1, 0.5, 0.8], sigmaDst: [0, 0.1, 0.7] },
  {
    label: 'dropped components (−∞ log-weights)',
    shape: [4, 6, 3],
    K: 6,
    sigmaSrc: [1, 0.9, 0.7, 0.4],
    sigmaDst: [0, 0.2, 0.1, 0],
    options: { dropout: 0.6 },
  },
  {
    label: 'σ_dst = 0 everywhere, temperature 0.3, shift 3.2',
    shape: [2, 9, 4],
    K: 8,
    sigmaSrc: [1, 0.75],
    sigmaDst: [0, 0],
    options: { temperature: 0.3 },
    shift: 3.2,
  },
  {
    label: 'items with different substep counts (one of a single substep)',
    shape: [3, 4, 2],
    K: 3,
    sigmaSrc: [0.95, 0.5, 0.3],
    sigmaDst: [0, 0.49, 0.29],
  },
  { label: '[B, H, W, C] layout', shape: [2, 3, 5, 4], K: 5, sigmaSrc: [0.8, 1], sigmaDst: [0.05, 0] },
  {
    label: 'K = 8, C = 16 (benchmark shape, small)',
    shape: [2, 13, 16],
    K: 8,
    sigmaSrc: [1, 1],
    sigmaDst: [0, 0],
  },
];

describe('fused GM kernels on flat arrays', () => {
  it('rejects an unknown implementation choice, naming the argument', () => {
    expect(() => setGMFusedImplementation('gpu' as GMFusedImplementation)).toThrow(InvalidArgumentError);
    expect(() => setGMFusedImplementation('gpu' as GMFusedImplementation)).toThrow(/choice/);
  });

  it('the generated SIMD module is valid WebAssembly for several (K, C)', () => {
    expect(wasmSimdSupported()).toBe(true); // Node 20 runs WebAssembly SIMD
    for (const [K, C] of [
      [1, 1],
      [3, 2],
      [8, 16],
      [12, 64],
    ] as const) {
      expect(WebAssembly.validate(generateGMRolloutModule(K, C)), `K=${K}, C=${C}`).toBe(true);
    }
    expect(simdKernelFits(8, 16)).toBe(true);
    expect(simdKernelFits(256, 64)).toBe(false);
  });

  it('SIMD and JS kernels agree (Gram form and one-channel form), and too-large K falls back to the JS loop', () => {
    const random = createRandom(5);
    for (const [K, C, P] of [
      [8, 16, 37],
      [8, 1, 37], // one channel: the kernel without the Gram matrix
      [3, 1, 5],
      [200, 1, 3],
    ] as const) {
      const B = 2;
      const arrays: GMRolloutArrays = {
        batch: B,
        positions: P,
        components: K,
        channels: C,
        x: random.fillNormal(new Float32Array(B * P * C)),
        xSrc: random.fillNormal(new Float32Array(B * P * C)),
        means: random.fillNormal(new Float32Array(B * P * K * C)),
        logweights: random.fillNormal(new Float32Array(B * P * K)),
      };
      const segment: RolloutSegment = {
        sigmaSrc: new Float32Array([1, 0.6]),
        sigmaDst: new Float32Array([0, 0.2]),
        substeps: 128,
        shift: 2,
      };
      const plan = planGMRollout(new Float32Array([1, 0.6]), [0.3, 0.05], segment);
      const js = gmRolloutJS(arrays, plan);
      const simd = runGMRolloutArrays(arrays, plan, 'simd');
      if (simdKernelFits(K, C)) {
        expect(simd).toBeDefined();
        expect(relativeError(simd!, js)).toBeLessThan(TOLERANCE);
      } else {
        expect(simd).toBeUndefined();
        expect(runGMRolloutArrays(arrays, plan, 'auto')).toEqual(js);
      }
    }
  });
});

for (const backend of testBackends()) {
  describe(`fused GM rollout kernels on ${backend}`, () => {
    const spy = new FusedKernelSpy(gmFusedRolloutKernel, backend);
    beforeAll(async () => {
      await useBackend(backend);
    });
    afterEach(() => {
      setGMFusedImplementation('auto');
    });
    afterAll(() => {
      spy.uninstall();
    });

    it('registers its tfjs kernel lazily, on first fused use', () => {
      // this file runs in its own process: importing the package (and the suites so far) registered nothing
      expect(tf.getKernel(GM_FUSED_ROLLOUT_KERNEL, backend)).toBeUndefined();
      expect(gm.fusedRollout).toBe(gmFusedRolloutKernel);
      expect(gmFusedRolloutKernel.kernelName).toBe(GM_FUSED_ROLLOUT_KERNEL);
      expect(Object.keys(gmFusedRolloutKernel.kernels!)).toEqual(['cpu', 'wasm']);
      const random = createRandom(1);
      const policy = makePolicy([1, 3, 2], 2, random, [0.5]);
      const y = rollout(policy, policy.xSrc, { sigmaSrc: 0.5, sigmaDst: 0, substeps: 8 });
      expect(tf.getKernel(GM_FUSED_ROLLOUT_KERNEL, backend)?.kernelFunc).toBe(
        gmFusedRolloutKernel.kernels![backend],
      );
      expect(tf.getKernel(GM_FUSED_ROLLOUT_KERNEL, 'webgl')).toBeUndefined();
      tf.dispose(y);
      policy.dispose();
      spy.install(); // from here on the kernel's runs are counted
    });

    it('the call carries the unified inputs and attributes (what every backend’s kernel takes)', () => {
      const random = createRandom(2);
      const policy = makePolicy([2, 3, 2], 2, random, [0.5, 0.75]);
      const segment: RolloutSegment = {
        sigmaSrc: new Float32Array([0.5, 0.6]),
        sigmaDst: new Float32Array([0, 0.2]),
        substeps: 16,
        shift: 2,
      };
      const call = policy.fusedRolloutCall(policy.xSrc, segment)!;
      expect(call.kernel).toBe(gmFusedRolloutKernel);
      expect(Object.keys(call.inputs).sort()).toEqual(['logweights', 'means', 'variance', 'x', 'xSrc']);
      expect(call.inputs.x).toBe(policy.xSrc);
      expect(call.inputs.means).toBe(policy.means);
      expect(call.inputs.variance).toBe(policy.variance);
      expect(call.attrs).toEqual({
        policySigmaSrc: [0.5, Math.fround(0.75)],
        sigmaSrc: [0.5, Math.fround(0.6)],
        sigmaDst: [0, Math.fround(0.2)],
        substeps: 16,
        shift: 2,
      });
      // x of another shape or dtype: no call (the rollout goes op by op, where the policy reports a mismatch)
      const wrong = tf.zeros([2, 2, 2]);
      const ints = tf.zeros([2, 3, 2], 'int32');
      expect(policy.fusedRolloutCall(wrong, segment)).toBeUndefined();
      expect(policy.fusedRolloutCall(ints, segment)).toBeUndefined();
      expect(() => rollout(policy, wrong, { sigmaSrc: 0.5, sigmaDst: 0 })).toThrow(InvalidArgumentError);
      tf.dispose([wrong, ints]);
      policy.dispose();
    });

    for (const choice of ['simd', 'js'] as GMFusedImplementation[]) {
      for (const c of cases) {
        it(`${choice}: matches op by op (≤ ${TOLERANCE}), ${c.label}`, () => {
          setGMFusedImplementation(choice);
          const random = createRandom(17);
          const policy = makePolicy(c.shape, c.K, random, c.sigmaSrc, c.options);
          if (c.options?.dropout) {
            const lw = policy.logweights.dataSync();
            expect(lw.some((v) => v === Number.NEGATIVE_INFINITY)).toBe(true);
          }
          const x = tf.tidy(() => tf.add(policy.xSrc, tf.mul(random.normalTensor(c.shape), 0.2)));
          const { fused, reference, shape } = fusedAndReference(
            spy,
            policy,
            x,
            c.sigmaSrc,
            c.sigmaDst,
            c.shift,
          );
          expect(shape).toEqual(c.shape);
          expect(fused.every(Number.isFinite)).toBe(true);
          expect(relativeError(fused, reference)).toBeLessThan(TOLERANCE);
          tf.dispose(x);
          policy.dispose();
        });
      }
    }

    it('planted bug: with the kernel unregistered, the comparison helper fails (its run count stays 0)', () => {
      const c = cases[1]!;
      const random = createRandom(17);
      const policy = makePolicy(c.shape, c.K, random, c.sigmaSrc, c.options);
      const x = tf.tidy(() => tf.add(policy.xSrc, tf.mul(random.normalTensor(c.shape), 0.2)));
      tf.unregisterKernel(GM_FUSED_ROLLOUT_KERNEL, backend);
      try {
        // The rollout is still right (the package's kernel is registered again, uncounted, on first use), so
        // only the run count tells that the kernel under test did not run.
        expect(() => fusedAndReference(spy, policy, x, c.sigmaSrc, c.sigmaDst, c.shift)).toThrow(
          `runs of ${GM_FUSED_ROLLOUT_KERNEL} on ${backend}`,
        );
        expect(tf.getKernel(GM_FUSED_ROLLOUT_KERNEL, backend)?.kernelFunc).toBe(
          gmFusedRolloutKernel.kernels![backend],
        );
      } finally {
        spy.install();
      }
      const { fused, reference } = fusedAndReference(spy, policy, x, c.sigmaSrc, c.sigmaDst, c.shift);
      expect(relativeError(fused, reference)).toBeLessThan(TOLERANCE);
      tf.dispose(x);
      policy.dispose();
    });

    it('runs as one kernel, and fused: false goes op by op', async () => {
      const random = createRandom(3);
      const policy = makePolicy([2, 4, 3], 3, random, [1, 1]);
      const options = { sigmaSrc: 1, sigmaDst: 0, substeps: 32 };
      const fused = await tf.profile(() => rollout(policy, policy.xSrc, options));
      expect(fused.kernelNames).toEqual([GM_FUSED_ROLLOUT_KERNEL]);
      const opByOp = await tf.profile(() => rollout(policy, policy.xSrc, { ...options, fused: false }));
      expect(opByOp.kernelNames).not.toContain(GM_FUSED_ROLLOUT_KERNEL);
      expect(opByOp.kernels.length).toBeGreaterThan(32 * 10);
      tf.dispose([fused.result as tf.Tensor, opByOp.result as tf.Tensor]);
      policy.dispose();
    });

    it("declines (FusedRolloutDeclined) when 'simd' is required but cannot run: op by op instead", async () => {
      setGMFusedImplementation('simd');
      expect(simdKernelFits(200, 1)).toBe(false);
      const random = createRandom(9);
      const policy = makePolicy([2, 3, 1], 200, random, [0.7, 0.7]);
      const call = policy.fusedRolloutCall(policy.xSrc, {
        sigmaSrc: new Float32Array([0.7, 0.7]),
        sigmaDst: new Float32Array([0, 0]),
        substeps: 8,
        shift: 1,
      })!;
      const kernelFunc = gmFusedRolloutKernel.kernels![backend]!;
      expect(() => kernelFunc({ inputs: call.inputs, attrs: call.attrs, backend: tf.backend() })).toThrow(
        FusedRolloutDeclined,
      );
      expect(runFusedRollout(call)).toBeUndefined();
      const options = { sigmaSrc: 0.7, sigmaDst: 0, substeps: 8 };
      const runsBefore = spy.runs;
      const declined = await tf.profile(() => rollout(policy, policy.xSrc, options));
      expect(spy.runs).toBe(runsBefore);
      expect(declined.kernelNames).not.toContain(GM_FUSED_ROLLOUT_KERNEL);
      const reference = rollout(policy, policy.xSrc, { ...options, fused: false });
      expect(Array.from((declined.result as tf.Tensor).dataSync())).toEqual(Array.from(reference.dataSync()));
      // with the JS loop allowed, the same call runs fused
      setGMFusedImplementation('auto');
      const fused = runFusedRollout(call);
      expect(fused).toBeInstanceOf(tf.Tensor);
      expect(spy.runs).toBe(runsBefore + 1);
      tf.dispose([declined.result as tf.Tensor, reference, fused!]);
      policy.dispose();
    });

    it('falls back to op by op while a gradient tape records, so gradients flow', () => {
      const random = createRandom(4);
      const shape = [2, 3, 2];
      const means = random.normalTensor([2, 3, 2, 2]);
      const logweights = random.normalTensor([2, 3, 2]);
      const logstd = tf.tensor1d([-1, -0.5]);
      const xSrc = random.normalTensor(shape);
      const segment: RolloutSegment = {
        sigmaSrc: new Float32Array([0.8, 0.8]),
        sigmaDst: new Float32Array([0.6, 0.6]),
        substeps: 16,
        shift: 1,
      };
      const runsBefore = spy.runs;
      let fusedInsideTape: tf.Tensor | undefined | null = null;
      const grad = tf.grad((m: tf.Tensor) => {
        const policy = gm.create({ space: 'u', means: m, logweights, logstd }, xSrc, 0.8);
        fusedInsideTape = runFusedRollout(policy.fusedRolloutCall(xSrc, segment)!);
        return tf.sum(rollout(policy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0.6, substeps: 16 }));
      })(means);
      expect(fusedInsideTape).toBeUndefined();
      expect(spy.runs).toBe(runsBefore);
      const g = grad.dataSync();
      expect(g.every(Number.isFinite)).toBe(true);
      expect(Math.max(...Array.from(g, Math.abs))).toBeGreaterThan(1e-3);
      // outside the tape the same policy does run fused
      const policy = gm.create({ space: 'u', means, logweights, logstd }, xSrc, 0.8);
      const outside = runFusedRollout(policy.fusedRolloutCall(xSrc, segment)!);
      expect(outside).toBeInstanceOf(tf.Tensor);
      expect(spy.runs).toBe(runsBefore + 1);
      tf.dispose([grad, means, logweights, logstd, xSrc, outside as tf.Tensor]);
      policy.dispose();
    });

    it('leaks no tensors (SIMD and JS)', () => {
      const random = createRandom(6);
      const policy = makePolicy([2, 5, 3], 4, random, [0.9, 0.7]);
      const sigmaSrc = tf.tensor1d([0.9, 0.7]);
      for (const choice of ['simd', 'js'] as GMFusedImplementation[]) {
        setGMFusedImplementation(choice);
        const runsBefore = spy.runs;
        const { leaked, result } = countLeaks(() =>
          rollout(policy, policy.xSrc, { sigmaSrc, sigmaDst: 0, substeps: 16 }),
        );
        expect(spy.runs).toBe(runsBefore + 1);
        expect(leaked).toBe(0);
        tf.dispose(result);
      }
      tf.dispose(sigmaSrc);
      policy.dispose();
    });
  });
}
