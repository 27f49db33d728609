// The fused WGSL rollout kernels against the op-by-op rollout on the same backend and against float64 Euler
// rollouts in plain JS. Runs in Node (Dawn) and in headless Chromium. Reads are asynchronous (`data()`):
// tfjs's synchronous WebGPU readback needs OffscreenCanvas, which Node lacks.
import {
  createAnalyticGMFlow,
  createRandom,
  FusedRolloutDeclined,
  InvalidArgumentError,
  type RolloutSegment,
  rollout,
  rolloutSigmaGrid,
  runFusedRollout,
  type Student,
  sample,
  type VelocityField,
} from '@piflow/core';
import { countLeaks, FusedKernelSpy, relativeError, useBackend } from '@piflow/core/testing';
import { DX_FUSED_ROLLOUT_KERNEL, dx, dxFusedRolloutKernel } from '@piflow/policy-dx';
import { GM_FUSED_ROLLOUT_KERNEL, type GMParams, gm, gmFusedRolloutKernel } from '@piflow/policy-gm';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dxEulerReference, gmEulerReference } from './__fixtures__/euler-reference';
import './__fixtures__/webgpu-test-backend';
import { GM_MAX_UNROLLED, gmRolloutKernelFunc, gmUsesGramForm } from './gm-rollout-kernel';
import { registerWebGPUKernels } from './register-kernels';
import { setupWebGPU } from './setup-webgpu';

/** Float32 fused vs float32 op-by-op (different summation orders over ≤ 128 substeps). */
const FUSED_TOLERANCE = 1e-4;
/** Float32 kernel vs float64 JS Euler rollout over the same σ grid. */
const FLOAT64_TOLERANCE = 2e-4;

function device(): GPUDevice {
  return (tf.backend() as unknown as WebGPUBackend).device;
}

/** Runs `fn` inside a validation error scope (WebGPU reports invalid programs only there) and reads it. */
async function validated(fn: () => tf.Tensor): Promise<Float32Array> {
  device().pushErrorScope('validation');
  const out = fn();
  const values = (await out.data()) as Float32Array;
  const error = await device().popErrorScope();
  expect(error?.message ?? null).toBeNull();
  out.dispose();
  return values;
}

async function kernelsRun(fn: () => tf.Tensor): Promise<string[]> {
  let result: tf.Tensor | undefined;
  const info = await tf.profile(() => {
    result = fn();
    return result;
  });
  result?.dispose();
  return info.kernelNames;
}

/** Counting spies on this package's WebGPU kernels, registered under the families' kernel names. */
const spies: Record<string, FusedKernelSpy> = {
  [GM_FUSED_ROLLOUT_KERNEL]: new FusedKernelSpy(gmFusedRolloutKernel, 'webgpu'),
  [DX_FUSED_ROLLOUT_KERNEL]: new FusedKernelSpy(dxFusedRolloutKernel, 'webgpu'),
};
const spy = {
  install: () => Object.values(spies).forEach((s) => s.install()),
  uninstall: () => Object.values(spies).forEach((s) => s.uninstall()),
  count: (name: string) => spies[name]!.runs,
};

interface SegmentValues {
  sigmaSrc: number[];
  sigmaDst: number[];
  substeps: number;
  shift: number;
}

function segmentOf(options: SegmentValues): RolloutSegment {
  return {
    sigmaSrc: Float32Array.from(options.sigmaSrc),
    sigmaDst: Float32Array.from(options.sigmaDst),
    substeps: options.substeps,
    shift: options.shift,
  };
}

function makeGM(shape: number[], K: number, sigmaSrc: number[], seed: number, options = {}) {
  const random = createRandom(seed);
  const positions = shape.slice(0, -1);
  const C = shape[shape.length - 1]!;
  const xSrc = random.normalTensor(shape);
  const params = {
    space: 'x0' as const,
    means: random.normalTensor([...positions, K, C]),
    logweights: tf.tidy(() => tf.mul(random.normalTensor([...positions, K]), 1.5)),
    variance: tf.tidy(() =>
      tf.add(tf.mul(tf.abs(random.normalTensor([shape[0]!])), 0.3), 0.05),
    ) as tf.Tensor1D,
  };
  const policy = gm.create(
    params,
    xSrc,
    tf.tidy(() => tf.tensor1d(sigmaSrc)),
    { random, ...options },
  );
  tf.dispose([params.means, params.logweights, params.variance]);
  return { policy, xSrc, random };
}

/**
 * Rolls `x` out over `segment` with the fused kernel (in a validation error scope) and op by op, and checks
 * that `kernel` ran exactly once for the fused rollout (the spy's count) and shows in a profile, and the fused
 * result against the op-by-op one and against `reference` (a float64 Euler rollout over the same σ grid).
 * Returns the fused values.
 */
async function expectFusedMatches(
  policy: VelocityField,
  x: tf.Tensor,
  segment: SegmentValues,
  kernel: string,
  reference: (x: Float64Array, segment: RolloutSegment) => Promise<Float64Array>,
): Promise<Float32Array> {
  const options = {
    sigmaSrc: tf.tensor1d(segment.sigmaSrc),
    sigmaDst: tf.tensor1d(segment.sigmaDst),
    substeps: segment.substeps,
    shift: segment.shift,
  };
  const before = spy.count(kernel);
  const fused = await validated(() => rollout(policy, x, options));
  expect(spy.count(kernel) - before, `runs of ${kernel} on webgpu`).toBe(1);
  const opByOp = rollout(policy, x, { ...options, fused: false });
  expect(relativeError(fused, await opByOp.data())).toBeLessThan(FUSED_TOLERANCE);
  const expected = await reference(Float64Array.from(await x.data()), segmentOf(segment));
  expect(relativeError(fused, expected)).toBeLessThan(FLOAT64_TOLERANCE);
  expect(await kernelsRun(() => rollout(policy, x, options))).toContain(kernel);
  tf.dispose([opByOp, options.sigmaSrc, options.sigmaDst]);
  return fused;
}

describe('fused WGSL rollout kernels on webgpu', () => {
  beforeAll(async () => {
    await useBackend('webgpu');
    registerWebGPUKernels(); // the kernels the spies count
    spy.install();
  });
  afterAll(() => {
    spy.uninstall();
  });

  it('setupWebGPU found WebGPU where the test runs (Dawn in Node, navigator.gpu in Chromium)', async () => {
    const setup = await setupWebGPU();
    expect(setup.platform).toBe(typeof window === 'undefined' ? 'node' : 'browser');
    expect(tf.getBackend()).toBe('webgpu');
  });

  // The kernel has two forms (gmUsesGramForm): the Gram form (K ≤ 2·C and K ≤ 32) and channel by channel.
  const gmCases = [
    { label: '[3, 4], K = 3 (Gram form)', shape: [3, 4], K: 3, gram: true },
    {
      label: '[2, 64, 16], K = 8 (the benchmark layout, fewer positions; Gram form)',
      shape: [2, 64, 16],
      K: 8,
      gram: true,
    },
    { label: '[2, 3, 5, 2] images, K = 5 (channel form: K > 2·C)', shape: [2, 3, 5, 2], K: 5, gram: false },
    { label: '[2, 2, 17], K = 33 (channel form: K > 32)', shape: [2, 2, 17], K: 33, gram: false },
  ];
  for (const { label, shape, K, gram } of gmCases) {
    it(`GM: one dispatch equals op by op and the float64 Euler rollout, per-item σ grids, ${label}`, async () => {
      expect(gmUsesGramForm(K, shape[shape.length - 1]!)).toBe(gram);
      const B = shape[0]!;
      const sigmaSrc = Array.from({ length: B }, (_, b) => [0.93, 0.41, 0.7][b % 3]!);
      const sigmaDst = Array.from({ length: B }, (_, b) => [0, 0.12, 0.3][b % 3]!);
      const { policy, xSrc } = makeGM(shape, K, sigmaSrc, 10 + K);
      const segment = { sigmaSrc, sigmaDst, substeps: 128, shift: 3.2 };
      const grids = rolloutSigmaGrid(segmentOf(segment));
      expect(new Set(grids.map((g) => g.length)).size).toBe(Math.min(B, 3)); // per-item grids differ

      const fused = await expectFusedMatches(policy, xSrc, segment, GM_FUSED_ROLLOUT_KERNEL, (x, seg) =>
        gmEulerReference(policy, x, seg),
      );
      // The result moved away from x_src.
      expect(relativeError(fused, await xSrc.data())).toBeGreaterThan(0.05);
      xSrc.dispose();
      policy.dispose();
    });
  }

  for (const [K, C] of [
    [4, 8],
    [6, 2],
  ] as const) {
    it(`GM (${gmUsesGramForm(K, C) ? 'Gram' : 'channel'} form): a rollout from another x, starting below the policy's σ_src and stopping above 0, matches op by op`, async () => {
      const shape = [3, 5, C];
      const { policy, xSrc, random } = makeGM(shape, K, [0.95, 0.8, 0.6], 21);
      // Not x_src (sampling steps start there; training rolls out from intermediate states).
      const x = tf.tidy(() => tf.add(xSrc, tf.mul(random.normalTensor(shape), 0.3)));
      const segment = { sigmaSrc: [0.7, 0.5, 0.6], sigmaDst: [0.2, 0.05, 0.6], substeps: 100, shift: 2 };
      await expectFusedMatches(policy, x, segment, GM_FUSED_ROLLOUT_KERNEL, (x64, seg) =>
        gmEulerReference(policy, x64, seg),
      );
      tf.dispose([x, xSrc]);
      policy.dispose();
    });
  }

  it('GM: a 4-step sample() with the exact oracle student (which reads its σ tensor) matches the cpu backend', async () => {
    // The student validates σ with a synchronous read: sample() must hand it a σ tensor whose values are
    // readable on WebGPU in Node too. The same noise, sampled on cpu, is the reference.
    const random = createRandom(31);
    const means = Array.from({ length: 6 }, () => Array.from({ length: 4 }, () => 2 * random.normal()));
    const flow = createAnalyticGMFlow({ means, std: 0.3 });
    const student: Student<GMParams> = { family: 'gm', predict: (x, sigma) => flow.posterior(x, sigma) };
    const noiseValues = await random.normalTensor([64, 4]).data();
    const run = async () => {
      const noise = tf.tensor2d(noiseValues, [64, 4]);
      const out = sample(student, gm, noise, { numInferenceSteps: 4 });
      const values = Float32Array.from(await out.data());
      tf.dispose([noise, out]);
      return values;
    };
    const before = spy.count(GM_FUSED_ROLLOUT_KERNEL);
    const onWebGPU = await run();
    expect(spy.count(GM_FUSED_ROLLOUT_KERNEL) - before).toBe(4); // one fused rollout per step
    expect(await kernelsRun(() => sample(student, gm, tf.zeros([2, 4]), { numInferenceSteps: 2 }))).toContain(
      GM_FUSED_ROLLOUT_KERNEL,
    );
    await useBackend('cpu');
    const onCpu = await run();
    await useBackend('webgpu');
    expect(relativeError(onWebGPU, onCpu)).toBeLessThan(1e-3);
  });

  it('GM: dropped components (log-weight −∞) and temperature match op by op', async () => {
    const shape = [4, 6, 3];
    const sigmaSrc = [1, 0.8, 0.6, 0.9];
    const { policy, xSrc } = makeGM(shape, 6, sigmaSrc, 3, { dropout: 0.5, temperature: 0.4 });
    const logweights = await policy.logweights.data();
    expect(Array.from(logweights).some((v) => v === -Infinity)).toBe(true);
    const options = { sigmaSrc: tf.tensor1d(sigmaSrc), sigmaDst: 0, substeps: 64, shift: 1 };
    const before = spy.count(GM_FUSED_ROLLOUT_KERNEL);
    const fused = await validated(() => rollout(policy, xSrc, options));
    expect(spy.count(GM_FUSED_ROLLOUT_KERNEL) - before).toBe(1);
    const opByOp = rollout(policy, xSrc, { ...options, fused: false });
    expect(Array.from(fused).every(Number.isFinite)).toBe(true);
    expect(relativeError(fused, await opByOp.data())).toBeLessThan(FUSED_TOLERANCE);
    tf.dispose([opByOp, xSrc, options.sigmaSrc]);
    policy.dispose();
  });

  for (const mode of ['grid', 'polynomial'] as const) {
    it(`DX ${mode}: one dispatch equals op by op and the float64 Euler rollout, per-item σ grids`, async () => {
      const random = createRandom(mode === 'grid' ? 4 : 5);
      const B = 3;
      const N = 10;
      const shape = [B, 2, 4, 16];
      const xSrc = random.normalTensor(shape);
      const x0Grid = random.normalTensor([B, N, ...shape.slice(1)]);
      const sigmaSrc = [0.95, 0.5, 0.7];
      const sigmaDst = [0, 0.2, 0.69];
      const policy = dx.create({ space: 'x0', x0Grid }, xSrc, tf.tensor1d(sigmaSrc), {
        mode,
        shift: 3.2,
        segmentSize: mode === 'grid' ? 0.6 : 0.3,
      });
      await expectFusedMatches(
        policy,
        xSrc,
        { sigmaSrc, sigmaDst, substeps: 128, shift: 3.2 },
        DX_FUSED_ROLLOUT_KERNEL,
        (x, seg) => dxEulerReference(policy, x, seg),
      );
      tf.dispose([xSrc, x0Grid]);
      policy.dispose();
    });
  }

  it('planted bug: with the webgpu kernel unregistered, no fused kernel runs and the helper fails', async () => {
    const { policy, xSrc } = makeGM([2, 6, 4], 3, [0.9, 0.5], 41);
    const segment = { sigmaSrc: [0.9, 0.5], sigmaDst: [0, 0.1], substeps: 32, shift: 1 };
    tf.unregisterKernel(GM_FUSED_ROLLOUT_KERNEL, 'webgpu');
    try {
      // no kernel on 'webgpu' under the name (policy-gm provides cpu and wasm only): the rollout goes op by
      // op, which matches the references, so only the run count shows that nothing fused ran
      const before = spy.count(GM_FUSED_ROLLOUT_KERNEL);
      await expect(
        expectFusedMatches(policy, xSrc, segment, GM_FUSED_ROLLOUT_KERNEL, (x, seg) =>
          gmEulerReference(policy, x, seg),
        ),
      ).rejects.toThrow(`runs of ${GM_FUSED_ROLLOUT_KERNEL} on webgpu`);
      expect(spy.count(GM_FUSED_ROLLOUT_KERNEL)).toBe(before);
      expect(tf.getKernel(GM_FUSED_ROLLOUT_KERNEL, 'webgpu')).toBeUndefined();
    } finally {
      spy.install();
    }
    await expectFusedMatches(policy, xSrc, segment, GM_FUSED_ROLLOUT_KERNEL, (x, seg) =>
      gmEulerReference(policy, x, seg),
    );
    xSrc.dispose();
    policy.dispose();
  });

  it('leaves no tensors behind (GM and DX)', async () => {
    const { policy, xSrc, random } = makeGM([2, 5, 4], 3, [0.8, 0.6], 6);
    const x0Grid = random.normalTensor([2, 4, 5, 4]);
    const dxPolicy = dx.create({ space: 'x0', x0Grid }, xSrc, 0.8);
    const x = tf.tidy(() => tf.add(xSrc, 0.1)); // (x_src itself takes the GM kernel's other variant)
    const dataIds = (tf.backend() as unknown as WebGPUBackend).numDataIds();
    const before = [spy.count(GM_FUSED_ROLLOUT_KERNEL), spy.count(DX_FUSED_ROLLOUT_KERNEL)];
    const { leaked, result } = countLeaks(() => [
      rollout(policy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0.1, substeps: 32 }),
      rollout(policy, x, { sigmaSrc: 0.8, sigmaDst: 0.1, substeps: 32 }),
      rollout(dxPolicy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0.1, substeps: 32 }),
    ]);
    expect(leaked).toBe(0);
    expect([spy.count(GM_FUSED_ROLLOUT_KERNEL), spy.count(DX_FUSED_ROLLOUT_KERNEL)]).toEqual([
      before[0]! + 2,
      before[1]! + 1,
    ]);
    // the kernels' tables (backend data made inside the kernels) are freed too
    expect((tf.backend() as unknown as WebGPUBackend).numDataIds()).toBe(dataIds + 3);
    expect(await kernelsRun(() => rollout(dxPolicy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0 }))).toContain(
      DX_FUSED_ROLLOUT_KERNEL,
    );
    tf.dispose([...result, x, xSrc, x0Grid]);
    policy.dispose();
    dxPolicy.dispose();
  });

  it('steps aside while a gradient tape records, so rollouts stay differentiable', async () => {
    const { policy, xSrc } = makeGM([2, 3], 2, [0.9, 0.9], 7);
    const segment = segmentOf({ sigmaSrc: [0.9, 0.9], sigmaDst: [0, 0], substeps: 8, shift: 1 });
    const before = spy.count(GM_FUSED_ROLLOUT_KERNEL);
    let insideTape: tf.Tensor | undefined | 'unset' = 'unset';
    const grad = tf.grad((x: tf.Tensor) => {
      insideTape = runFusedRollout(policy.fusedRolloutCall(x, segment)!);
      return tf.sum(rollout(policy, x, { sigmaSrc: 0.9, sigmaDst: 0, substeps: 8 }));
    })(xSrc);
    expect(insideTape).toBeUndefined();
    expect(spy.count(GM_FUSED_ROLLOUT_KERNEL)).toBe(before);
    const g = await grad.data();
    expect(Array.from(g).every(Number.isFinite)).toBe(true);
    expect(Array.from(g).some((v) => v !== 0)).toBe(true);
    tf.dispose([grad, xSrc]);
    policy.dispose();
  });

  it('an x of the wrong shape is reported by the policy, not by the kernel', () => {
    const { policy, xSrc } = makeGM([2, 3, 4], 2, [0.5, 0.5], 12);
    const wrong = tf.zeros([2, 4, 4]);
    expect(() => rollout(policy, wrong, { sigmaSrc: 0.5, sigmaDst: 0 })).toThrow(InvalidArgumentError);
    tf.dispose([wrong, xSrc]);
    policy.dispose();
  });

  it('falls back to op by op when K·C is too large to unroll', async () => {
    const C = Math.floor(GM_MAX_UNROLLED / 2) + 1;
    const { policy, xSrc } = makeGM([1, C], 2, [0.5], 8);
    const segment = segmentOf({ sigmaSrc: [0.5], sigmaDst: [0.4], substeps: 8, shift: 1 });
    const call = policy.fusedRolloutCall(xSrc, segment)!;
    expect(() =>
      gmRolloutKernelFunc({ inputs: call.inputs, attrs: call.attrs, backend: tf.backend() }),
    ).toThrow(FusedRolloutDeclined);
    const before = spy.count(GM_FUSED_ROLLOUT_KERNEL);
    expect(runFusedRollout(call)).toBeUndefined();
    const y = rollout(policy, xSrc, { sigmaSrc: 0.5, sigmaDst: 0.4, substeps: 8 });
    expect(y.shape).toEqual([1, C]);
    // declined under tf.profile too (tfjs runs kernels in an async timer there): op by op, no fused entry
    const profiled = await tf.profile(() =>
      rollout(policy, xSrc, { sigmaSrc: 0.5, sigmaDst: 0.4, substeps: 8 }),
    );
    expect(profiled.kernelNames).not.toContain(GM_FUSED_ROLLOUT_KERNEL);
    expect(spy.count(GM_FUSED_ROLLOUT_KERNEL)).toBe(before);
    expect(relativeError(await (profiled.result as tf.Tensor).data(), await y.data())).toBe(0);
    tf.dispose([y, xSrc, profiled.result as tf.Tensor]);
    policy.dispose();
  });

  it('registerWebGPUKernels registers for webgpu only, under the families’ names, idempotently; cpu runs the families’ own', async () => {
    const names = registerWebGPUKernels(); // the spies stay registered: a name already registered is left alone
    expect(names).toEqual([GM_FUSED_ROLLOUT_KERNEL, DX_FUSED_ROLLOUT_KERNEL]);
    expect(registerWebGPUKernels()).toEqual(names);
    expect(gm.fusedRollout?.kernelName).toBe(GM_FUSED_ROLLOUT_KERNEL);
    expect(dx.fusedRollout?.kernelName).toBe(DX_FUSED_ROLLOUT_KERNEL);
    expect(Object.keys(gm.fusedRollout?.kernels ?? {})).not.toContain('webgpu');
    const before = spy.count(GM_FUSED_ROLLOUT_KERNEL);
    await useBackend('cpu');
    try {
      // on cpu the same kernel name runs @piflow/policy-gm's own kernel, registered on first use
      const { policy, xSrc } = makeGM([2, 4], 2, [0.7, 0.7], 9);
      const ran = await kernelsRun(() => rollout(policy, xSrc, { sigmaSrc: 0.7, sigmaDst: 0, substeps: 4 }));
      expect(ran).toEqual([GM_FUSED_ROLLOUT_KERNEL]);
      expect(tf.getKernel(GM_FUSED_ROLLOUT_KERNEL, 'cpu')?.kernelFunc).toBe(gm.fusedRollout?.kernels?.cpu);
      expect(spy.count(GM_FUSED_ROLLOUT_KERNEL)).toBe(before);
      xSrc.dispose();
      policy.dispose();
    } finally {
      await useBackend('webgpu');
    }
  });
});
