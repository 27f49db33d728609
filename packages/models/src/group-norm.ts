import { type KernelBackend, type KernelIO, kernelIO } from '@piflow/core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { type GroupNormSimd, groupNormSimd } from './group-norm-simd';
import { makeVariable, type NamedVariable } from './layers';

/**
 * GroupNorm over the channel (last) axis of channels-last tensors (Wu & He 2018): each sample's C channels
 * are split into G groups of C/G consecutive channels, normalised by the mean and variance over the group's
 * channels and all positions (ε = 1e-5), then scaled and shifted per channel.
 *
 * On the cpu and wasm backends it runs as two fused kernels (forward; backward giving dx, dscale, dshift) that
 * pass over the data two or three times: the same maths as tfjs ops composed (moments, sub, rsqrt, mul, add
 * and their autodiff), which cost ~15 element-wise passes and transposes for the reductions. On wasm the
 * passes are WebAssembly SIMD functions working in the backend's heap (group-norm-simd.ts; channel counts
 * that are multiples of 4), on cpu JS loops. On WebGPU it is those composed ops.
 */

export interface GroupNormLayer {
  scale: NamedVariable;
  shift: NamedVariable;
  channels: number;
  groups: number;
}

export const GROUP_NORM_EPSILON = 1e-5;

/** The largest divisor of `channels` that is ≤ `groups` (so every group has the same number of channels). */
export function groupCount(channels: number, groups: number): number {
  let g = Math.max(1, Math.min(groups, channels));
  while (channels % g !== 0) g--;
  return g;
}

/** A GroupNorm layer: at most `groups` groups (see groupCount), learnt scale (init 1) and shift (init 0). */
export function createGroupNorm(name: string, channels: number, groups: number): GroupNormLayer {
  return {
    scale: makeVariable(`${name}/scale`, new Float32Array(channels).fill(1), [channels]),
    shift: makeVariable(`${name}/shift`, new Float32Array(channels), [channels]),
    channels,
    groups: groupCount(channels, groups),
  };
}

/** GroupNorm of x [B, …positions, C] with the layer's scale and shift. Differentiable. */
export function groupNorm(x: tf.Tensor, layer: GroupNormLayer): tf.Tensor {
  return groupNormOp(x, layer.scale.variable, layer.shift.variable, layer.groups);
}

/** GroupNorm of x [B, …positions, C] with scale and shift [C] and `groups` groups (a divisor of C). */
export function groupNormOp(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, groups: number): tf.Tensor {
  if (hasFusedKernels(tf.getBackend())) return fused(x, scale, shift, groups);
  return composedGroupNorm(x, scale, shift, groups);
}

/** The same GroupNorm from tfjs ops (what WebGPU runs, and the reference the fused kernels are tested against). */
export function composedGroupNorm(
  x: tf.Tensor,
  scale: tf.Tensor,
  shift: tf.Tensor,
  groups: number,
): tf.Tensor {
  return tf.tidy(() => {
    const shape = x.shape;
    const C = shape[shape.length - 1]!;
    const grouped = tf.reshape(x, [shape[0]!, -1, groups, C / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 3], true);
    const normalised = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, GROUP_NORM_EPSILON)));
    return tf.add(tf.mul(tf.reshape(normalised, shape), scale), shift);
  });
}

// --------------------------------------------------------------------------------------------------------
// The fused kernels (cpu and wasm)

const FORWARD = 'PiflowGroupNorm';
const BACKWARD = 'PiflowGroupNormGrad';
const FUSED_BACKENDS = ['cpu', 'wasm'] as const;

function fused(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, groups: number): tf.Tensor {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, gamma, beta] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    const value = tf.engine().runKernel(
      FORWARD,
      { x: input!, scale: gamma!, shift: beta! },
      {
        groups,
      },
    ) as tf.Tensor;
    save([input!, gamma!]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs] = saved as [tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(BACKWARD, { dy, x: xs, scale: gs }, { groups }) as tf.Tensor[];
      },
    };
  });
  return (op as (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor)(x, scale, shift);
}

/**
 * The passes over one sample's data (P positions × C channels) that GroupNorm's kernels are made of; the
 * maths between them (statistics, coefficients) is shared. {@link jsPasses} loops in JS (cpu backend, and
 * wasm when SIMD is unavailable); the wasm backend runs the SIMD functions of group-norm-simd.ts in its heap.
 */
interface Passes {
  /** out[0..C) = Σ x, out[C..2C) = Σ x² over sample n's positions, per channel. */
  sums(n: number, out: Float64Array): void;
  /** y = x·a + b per channel for sample n. */
  affine(n: number, a: Float32Array, b: Float32Array): void;
  /** out[0..C) = Σ dy, out[C..2C) = Σ dy·x for sample n. */
  sums2(n: number, out: Float64Array): void;
  /** dx = a·dy + b·x + e per channel for sample n. */
  affine2(n: number, a: Float32Array, b: Float32Array, e: Float32Array): void;
}

/** The passes as JS loops over typed arrays (x, y for the forward; dy, x, dx for the backward). */
function jsPasses(
  arrays: { x: ArrayLike<number>; y?: Float32Array; dy?: ArrayLike<number>; dx?: Float32Array },
  P: number,
  C: number,
): Passes {
  const { x, y, dy, dx } = arrays;
  return {
    sums(n, out) {
      out.fill(0);
      for (let p = 0; p < P; p++) {
        const base = (n * P + p) * C;
        for (let c = 0; c < C; c++) {
          const v = x[base + c]!;
          out[c]! += v;
          out[C + c]! += v * v;
        }
      }
    },
    affine(n, a, b) {
      for (let p = 0; p < P; p++) {
        const base = (n * P + p) * C;
        for (let c = 0; c < C; c++) y![base + c] = x[base + c]! * a[c]! + b[c]!;
      }
    },
    sums2(n, out) {
      out.fill(0);
      for (let p = 0; p < P; p++) {
        const base = (n * P + p) * C;
        for (let c = 0; c < C; c++) {
          const d = dy![base + c]!;
          out[c]! += d;
          out[C + c]! += d * x[base + c]!;
        }
      }
    },
    affine2(n, a, b, e) {
      for (let p = 0; p < P; p++) {
        const base = (n * P + p) * C;
        for (let c = 0; c < C; c++) dx![base + c] = a[c]! * dy![base + c]! + b[c]! * x[base + c]! + e[c]!;
      }
    },
  };
}

/** Sample n's per-group mean and 1/sqrt(variance + ε) from its per-channel Σ x, Σ x² (`sums`). */
function groupStatistics(
  sums: Float64Array,
  C: number,
  G: number,
  P: number,
  mean: Float64Array,
  rstd: Float64Array,
): void {
  const s = C / G;
  const count = P * s;
  for (let g = 0; g < G; g++) {
    let a = 0;
    let b = 0;
    for (let c = g * s; c < (g + 1) * s; c++) {
      a += sums[c]!;
      b += sums[C + c]!;
    }
    const m = a / count;
    mean[g] = m;
    rstd[g] = 1 / Math.sqrt(Math.max(b / count - m * m, 0) + GROUP_NORM_EPSILON);
  }
}

function forwardLoop(
  passes: Passes,
  scale: ArrayLike<number>,
  shift: ArrayLike<number>,
  N: number,
  P: number,
  C: number,
  G: number,
): void {
  const s = C / G;
  const sums = new Float64Array(2 * C);
  const mean = new Float64Array(G);
  const rstd = new Float64Array(G);
  const a = new Float32Array(C);
  const b = new Float32Array(C);
  for (let n = 0; n < N; n++) {
    passes.sums(n, sums);
    groupStatistics(sums, C, G, P, mean, rstd);
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / s);
      a[c] = rstd[g]! * scale[c]!;
      b[c] = shift[c]! - mean[g]! * rstd[g]! * scale[c]!;
    }
    passes.affine(n, a, b);
  }
}

/**
 * With x̂ = (x − μ)·r and dx̂ = dy·γ: dγ = Σ dy·x̂, dβ = Σ dy, and per sample and group (M elements)
 * dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
 */
function backwardLoop(
  passes: Passes,
  scale: ArrayLike<number>,
  dScale: Float32Array,
  dShift: Float32Array,
  N: number,
  P: number,
  C: number,
  G: number,
): void {
  const s = C / G;
  const M = P * s;
  const sums = new Float64Array(2 * C);
  const sums2 = new Float64Array(2 * C);
  const mean = new Float64Array(G);
  const rstd = new Float64Array(G);
  const dScale64 = new Float64Array(C);
  const dShift64 = new Float64Array(C);
  const a = new Float32Array(C);
  const b = new Float32Array(C);
  const e = new Float32Array(C);
  for (let n = 0; n < N; n++) {
    passes.sums(n, sums);
    groupStatistics(sums, C, G, P, mean, rstd);
    passes.sums2(n, sums2);
    for (let g = 0; g < G; g++) {
      const m = mean[g]!;
      const r = rstd[g]!;
      // Σ dx̂ and Σ dx̂·x̂ over the group.
      let sumD = 0;
      let sumDXhat = 0;
      for (let c = g * s; c < (g + 1) * s; c++) {
        const sumDy = sums2[c]!;
        const dyXhat = r * (sums2[C + c]! - m * sumDy);
        dScale64[c]! += dyXhat;
        dShift64[c]! += sumDy;
        sumD += scale[c]! * sumDy;
        sumDXhat += scale[c]! * dyXhat;
      }
      const meanD = sumD / M;
      const meanDXhat = sumDXhat / M;
      // dx = r·(γ·dy − meanD − (x − μ)·r·meanDXhat) = a_c·dy + b_g·x + e_g.
      for (let c = g * s; c < (g + 1) * s; c++) {
        a[c] = r * scale[c]!;
        b[c] = -r * r * meanDXhat;
        e[c] = -r * meanD + m * r * r * meanDXhat;
      }
    }
    passes.affine2(n, a, b, e);
  }
  for (let c = 0; c < C; c++) {
    dScale[c] = dScale64[c]!;
    dShift[c] = dShift64[c]!;
  }
}

/** SIMD kernels for one call, with a scratch buffer of floats in the wasm heap (released after the call). */
interface SimdCall {
  kernels: GroupNormSimd;
  /** The scratch buffer; take it after every allocation of the call (allocations may move the heap). */
  scratch(): Float32Array;
  release(): void;
}

/** The GroupNorm SIMD kernels for C channels with a scratch buffer, where the backend is wasm and has them. */
function simdCall(access: KernelIO, C: number, scratchFloats: number): SimdCall | undefined {
  const kernels = access.memory ? groupNormSimd(C, access.memory) : undefined;
  if (!kernels || !access.scratch || !access.release) return undefined;
  const scratch = access.scratch(scratchFloats);
  return {
    kernels,
    scratch: () => access.read(scratch),
    release: () => access.release!(scratch),
  };
}

/** Positions per call of the SIMD sums: short float32 partial sums, added in float64 here. */
const SUM_ROWS = 64;

/** The passes as the SIMD kernels working in the wasm heap on the arrays' memory (views of that heap). */
function simdPasses(
  call: SimdCall,
  arrays: { x: Float32Array; y?: Float32Array; dy?: Float32Array; dx?: Float32Array },
  P: number,
  C: number,
): Passes {
  const { kernels } = call;
  const scratch = call.scratch();
  const at = scratch.byteOffset;
  const sample = P * C * 4;
  const x = arrays.x.byteOffset;
  const y = arrays.y?.byteOffset ?? 0;
  const dy = arrays.dy?.byteOffset ?? 0;
  const dx = arrays.dx?.byteOffset ?? 0;
  const blocks = (n: number, out: Float64Array, run: (offset: number, rows: number) => void) => {
    out.fill(0);
    for (let r0 = 0; r0 < P; r0 += SUM_ROWS) {
      run(n * sample + r0 * C * 4, Math.min(SUM_ROWS, P - r0));
      for (let i = 0; i < 2 * C; i++) out[i]! += scratch[i]!;
    }
  };
  return {
    sums: (n, out) => blocks(n, out, (offset, rows) => kernels.sums(x + offset, rows, at)),
    affine(n, a, b) {
      scratch.set(a, 0);
      scratch.set(b, C);
      kernels.affine(x + n * sample, y + n * sample, P, at);
    },
    sums2: (n, out) => blocks(n, out, (offset, rows) => kernels.sums2(dy + offset, x + offset, rows, at)),
    affine2(n, a, b, e) {
      scratch.set(a, 0);
      scratch.set(b, C);
      scratch.set(e, 2 * C);
      kernels.affine2(dy + n * sample, x + n * sample, dx + n * sample, P, at);
    },
  };
}

interface FusedKernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: KernelBackend;
  attrs: Record<string, unknown>;
}

/** N, P (positions per sample) and C of a channels-last tensor. */
function dimensions(x: TensorInfo): { N: number; P: number; C: number } {
  const N = x.shape[0]!;
  const C = x.shape[x.shape.length - 1]!;
  const size = x.shape.reduce((a, b) => a * b, 1);
  return { N, P: N * C === 0 ? 0 : size / (N * C), C };
}

function forwardKernel({ inputs, backend, attrs }: FusedKernelArgs): TensorInfo {
  const x = inputs.x!;
  const { N, P, C } = dimensions(x);
  const access = kernelIO(backend);
  const { infos, views } = access.outputs([x.shape]);
  const simd = simdCall(access, C, 2 * C);
  const [y] = views();
  const arrays = { x: access.read(x), y: y! };
  try {
    forwardLoop(
      simd ? simdPasses(simd, arrays, P, C) : jsPasses(arrays, P, C),
      access.read(inputs.scale!),
      access.read(inputs.shift!),
      N,
      P,
      C,
      attrs.groups as number,
    );
  } finally {
    simd?.release();
  }
  return infos[0]!;
}

function backwardKernel({ inputs, backend, attrs }: FusedKernelArgs): TensorInfo[] {
  const x = inputs.x!;
  const { N, P, C } = dimensions(x);
  const access = kernelIO(backend);
  const { infos, views } = access.outputs([x.shape, [C], [C]]);
  const simd = simdCall(access, C, 3 * C);
  const [dx, dScale, dShift] = views();
  const arrays = { x: access.read(x), dy: access.read(inputs.dy!), dx: dx! };
  try {
    backwardLoop(
      simd ? simdPasses(simd, arrays, P, C) : jsPasses(arrays, P, C),
      access.read(inputs.scale!),
      dScale!,
      dShift!,
      N,
      P,
      C,
      attrs.groups as number,
    );
  } finally {
    simd?.release();
  }
  return infos;
}

function hasFusedKernels(backend: string): boolean {
  if (!(FUSED_BACKENDS as readonly string[]).includes(backend)) return false;
  if (!tf.getKernel(FORWARD, backend)) {
    tf.registerKernel({ kernelName: FORWARD, backendName: backend, kernelFunc: forwardKernel as never });
    tf.registerKernel({ kernelName: BACKWARD, backendName: backend, kernelFunc: backwardKernel as never });
  }
  return true;
}
