import {
  createRandom,
  InvalidArgumentError,
  type RolloutSegment,
  rollout,
  runFusedRollout,
} from '@piflow/core';
import { countLeaks, FusedKernelSpy, relativeError, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DXMode, type DXPolicy, dx } from '../index';
import { DX_FUSED_ROLLOUT_KERNEL, dxFusedRolloutKernel, planDXRollout } from './dx-fused-kernel';

/** Fused vs op-by-op tolerance (relative L2, float32 over up to 64 substeps). */
const TOLERANCE = 1e-4;

function makePolicy(
  shape: number[],
  N: number,
  sigmaSrc: number[],
  options: { mode: DXMode; shift?: number; segmentSize?: number },
  seed = 1,
) {
  const random = createRandom(seed);
  const x0Grid = random.normalTensor([shape[0]!, N, ...shape.slice(1)]);
  const xSrc = random.normalTensor(shape);
  const sigmaT = tf.tensor1d(sigmaSrc);
  const policy = dx.create({ space: 'x0', x0Grid }, xSrc, sigmaT, options);
  const x = tf.tidy(() => tf.add(xSrc, tf.mul(random.normalTensor(shape), 0.3)));
  tf.dispose([x0Grid, xSrc, sigmaT]);
  return { policy, x };
}

/**
 * `rollout` through core's dispatch (the fused kernel, which must have run exactly once: counted by `spy`)
 * and the op-by-op reference over the same segment.
 */
function fusedAndReference(
  spy: FusedKernelSpy,
  policy: DXPolicy,
  x: tf.Tensor,
  sigmaSrc: number[],
  sigmaDst: number[],
  shift: number,
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
  expect(runs, `runs of ${DX_FUSED_ROLLOUT_KERNEL} on ${spy.backend}`).toBe(1);
  return result;
}

const cases: {
  label: string;
  shape: number[];
  N: number;
  sigmaSrc: number[];
  sigmaDst: number[];
  segmentSize?: number;
  policyShift?: number;
  shift: number;
}[] = [
  { label: 'N = 1', shape: [2, 4, 3], N: 1, sigmaSrc: [0.9, 0.6], sigmaDst: [0, 0.3], shift: 1 },
  { label: 'N = 2', shape: [2, 4, 3], N: 2, sigmaSrc: [1, 0.6], sigmaDst: [0, 0.3], shift: 2 },
  {
    label: 'σ_dst = 0, shift 3.2, N = 10, segment 1/3.5 (steps leave the grid and clamp)',
    shape: [2, 6, 4],
    N: 10,
    sigmaSrc: [1, 0.35],
    sigmaDst: [0, 0],
    segmentSize: 1 / 3.5,
    policyShift: 3.2,
    shift: 3.2,
  },
  {
    label: 'items with different substep counts (one of a single substep)',
    shape: [3, 5, 2],
    N: 4,
    sigmaSrc: [0.95, 0.5, 0.3],
    sigmaDst: [0, 0.49, 0.29],
    shift: 1,
  },
  {
    label: '[B, H, W, C] layout',
    shape: [2, 3, 3, 2],
    N: 6,
    sigmaSrc: [0.8, 1],
    sigmaDst: [0.05, 0],
    shift: 1.5,
  },
];

for (const backend of testBackends()) {
  describe(`fused DX rollout kernel on ${backend}`, () => {
    const spy = new FusedKernelSpy(dxFusedRolloutKernel, backend);
    beforeAll(async () => {
      await useBackend(backend);
    });
    afterAll(() => {
      spy.uninstall();
    });

    it('registers its tfjs kernel lazily, on first fused use', () => {
      // this file runs in its own process: importing the package (and the suites so far) registered nothing
      expect(tf.getKernel(DX_FUSED_ROLLOUT_KERNEL, backend)).toBeUndefined();
      expect(dx.fusedRollout).toBe(dxFusedRolloutKernel);
      expect(dxFusedRolloutKernel.kernelName).toBe(DX_FUSED_ROLLOUT_KERNEL);
      expect(Object.keys(dxFusedRolloutKernel.kernels!)).toEqual(['cpu', 'wasm']);
      const { policy, x } = makePolicy([1, 2, 2], 3, [0.5], { mode: 'grid' });
      const y = rollout(policy, x, { sigmaSrc: 0.5, sigmaDst: 0, substeps: 8 });
      expect(tf.getKernel(DX_FUSED_ROLLOUT_KERNEL, backend)?.kernelFunc).toBe(
        dxFusedRolloutKernel.kernels![backend],
      );
      tf.dispose([x, y]);
      policy.dispose();
      spy.install(); // from here on the kernel's runs are counted
    });

    it('the call carries the unified inputs and the plan as attributes (what every backend’s kernel takes)', () => {
      const { policy, x } = makePolicy([2, 3, 2], 4, [0.9, 0.6], { mode: 'grid', shift: 2 });
      const segment: RolloutSegment = {
        sigmaSrc: new Float32Array([0.9, 0.6]),
        sigmaDst: new Float32Array([0, 0.3]),
        substeps: 32,
        shift: 2,
      };
      const call = policy.fusedRolloutCall(x, segment)!;
      expect(call.kernel).toBe(dxFusedRolloutKernel);
      expect(Object.keys(call.inputs).sort()).toEqual(['x', 'x0Grid']);
      expect(call.inputs.x).toBe(x);
      expect(call.inputs.x0Grid).toBe(policy.x0Grid);
      const plan = planDXRollout(policy, segment);
      expect(call.attrs).toEqual({ a: Array.from(plan.a), c: Array.from(plan.c), numPoints: 4 });
      const wrong = tf.zeros([2, 2, 2]);
      const ints = tf.zeros([2, 3, 2], 'int32');
      expect(policy.fusedRolloutCall(wrong, segment)).toBeUndefined();
      expect(policy.fusedRolloutCall(ints, segment)).toBeUndefined();
      expect(() => rollout(policy, wrong, { sigmaSrc: 0.5, sigmaDst: 0 })).toThrow(InvalidArgumentError);
      tf.dispose([wrong, ints, x]);
      policy.dispose();
    });

    for (const mode of ['grid', 'polynomial'] as DXMode[]) {
      for (const c of cases) {
        it(`${mode}: matches op by op (≤ ${TOLERANCE}), ${c.label}`, () => {
          const { policy, x } = makePolicy(c.shape, c.N, c.sigmaSrc, {
            mode,
            shift: c.policyShift ?? 1,
            segmentSize: c.segmentSize ?? 1,
          });
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
      const c = cases[2]!;
      const { policy, x } = makePolicy(c.shape, c.N, c.sigmaSrc, {
        mode: 'grid',
        shift: c.policyShift ?? 1,
        segmentSize: c.segmentSize ?? 1,
      });
      tf.unregisterKernel(DX_FUSED_ROLLOUT_KERNEL, backend);
      try {
        // The rollout is still right (the package's kernel is registered again, uncounted, on first use), so
        // only the run count tells that the kernel under test did not run.
        expect(() => fusedAndReference(spy, policy, x, c.sigmaSrc, c.sigmaDst, c.shift)).toThrow(
          `runs of ${DX_FUSED_ROLLOUT_KERNEL} on ${backend}`,
        );
        expect(tf.getKernel(DX_FUSED_ROLLOUT_KERNEL, backend)?.kernelFunc).toBe(
          dxFusedRolloutKernel.kernels![backend],
        );
      } finally {
        spy.install();
      }
      const { fused, reference } = fusedAndReference(spy, policy, x, c.sigmaSrc, c.sigmaDst, c.shift);
      expect(relativeError(fused, reference)).toBeLessThan(TOLERANCE);
      tf.dispose(x);
      policy.dispose();
    });

    it('a zero-length segment leaves x unchanged; one substep is one Euler step', () => {
      const { policy, x } = makePolicy([2, 3, 2], 3, [0.7, 0.7], { mode: 'grid' });
      const zero = planDXRollout(policy, {
        sigmaSrc: new Float32Array([0.7, 0.7]),
        sigmaDst: new Float32Array([0.7, 0.7]),
        substeps: 128,
        shift: 1,
      });
      expect(Array.from(zero.a)).toEqual([1, 1]);
      expect(Array.from(zero.c)).toEqual([0, 0, 0, 0, 0, 0]);
      // one substep from 0.7 to 0.69: x' = x + (0.69 − 0.7)·(x − x0(0.7))/0.7
      const one = planDXRollout(policy, {
        sigmaSrc: new Float32Array([0.7, 0.7]),
        sigmaDst: new Float32Array([0.69, 0.69]),
        substeps: 1,
        shift: 1,
      });
      const f = Math.fround(Math.fround(0.69) - Math.fround(0.7)) / Math.fround(0.7);
      const w = policy.weightsAt(new Float32Array([0.7, 0.7]));
      expect(one.a[0]).toBeCloseTo(1 + f, 12);
      for (let n = 0; n < 3; n++) expect(one.c[n]).toBeCloseTo(-f * w[n]!, 12);
      tf.dispose(x);
      policy.dispose();
    });

    it('runs as one kernel, and fused: false goes op by op', async () => {
      const { policy, x } = makePolicy([2, 4, 3], 5, [1, 1], { mode: 'grid' });
      const options = { sigmaSrc: 1, sigmaDst: 0, substeps: 32 };
      const fused = await tf.profile(() => rollout(policy, x, options));
      expect(fused.kernelNames).toEqual([DX_FUSED_ROLLOUT_KERNEL]);
      const opByOp = await tf.profile(() => rollout(policy, x, { ...options, fused: false }));
      expect(opByOp.kernelNames).not.toContain(DX_FUSED_ROLLOUT_KERNEL);
      expect(opByOp.kernels.length).toBeGreaterThan(32 * 4);
      tf.dispose([fused.result as tf.Tensor, opByOp.result as tf.Tensor, x]);
      policy.dispose();
    });

    it('falls back to op by op while a gradient tape records, so gradients flow', () => {
      const random = createRandom(4);
      const shape = [2, 3, 2];
      const grid = random.normalTensor([2, 4, 3, 2]);
      const xSrc = random.normalTensor(shape);
      const segment: RolloutSegment = {
        sigmaSrc: new Float32Array([0.8, 0.8]),
        sigmaDst: new Float32Array([0.5, 0.5]),
        substeps: 16,
        shift: 1,
      };
      const runsBefore = spy.runs;
      let fusedInsideTape: tf.Tensor | undefined | null = null;
      const grad = tf.grad((g: tf.Tensor) => {
        const policy = dx.create({ space: 'x0', x0Grid: g }, xSrc, 0.8);
        fusedInsideTape = runFusedRollout(policy.fusedRolloutCall(xSrc, segment)!);
        return tf.sum(rollout(policy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0.5, substeps: 16 }));
      })(grid);
      expect(fusedInsideTape).toBeUndefined();
      expect(spy.runs).toBe(runsBefore);
      const gv = grad.dataSync();
      expect(gv.every(Number.isFinite)).toBe(true);
      expect(Math.max(...Array.from(gv, Math.abs))).toBeGreaterThan(1e-3);
      const policy = dx.create({ space: 'x0', x0Grid: grid }, xSrc, 0.8);
      const outside = runFusedRollout(policy.fusedRolloutCall(xSrc, segment)!);
      expect(outside).toBeInstanceOf(tf.Tensor);
      expect(spy.runs).toBe(runsBefore + 1);
      tf.dispose([grad, grid, xSrc, outside as tf.Tensor]);
      policy.dispose();
    });

    it('leaks no tensors', () => {
      const { policy, x } = makePolicy([2, 5, 3], 4, [0.9, 0.7], { mode: 'polynomial' });
      const sigmaSrc = tf.tensor1d([0.9, 0.7]);
      const runsBefore = spy.runs;
      const { leaked, result } = countLeaks(() =>
        rollout(policy, x, { sigmaSrc, sigmaDst: 0, substeps: 16 }),
      );
      expect(spy.runs).toBe(runsBefore + 1);
      expect(leaked).toBe(0);
      tf.dispose([result, sigmaSrc, x]);
      policy.dispose();
    });
  });
}
