import type { TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { makeVariable, type NamedVariable } from './layers';

/**
 * GroupNorm over the channel (last) axis of channels-last tensors (Wu & He 2018): each sample's C channels
 * are split into G groups of C/G consecutive channels, normalised by the mean and variance over the group's
 * channels and all positions (ε = 1e-5), then scaled and shifted per channel.
 *
 * On the cpu and wasm backends it runs as two fused kernels (forward; backward giving dx, dscale, dshift) that
 * loop over the data once or twice in JS: the same maths as tfjs ops composed (moments, sub, rsqrt, mul, add
 * and their autodiff), which cost ~15 element-wise passes and transposes for the reductions. Elsewhere
 * (WebGPU) it is those composed ops.
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

/** Per sample n and group g: mean and 1/sqrt(variance + ε) (variance over the group's channels and positions). */
function statistics(
  x: ArrayLike<number>,
  N: number,
  P: number,
  C: number,
  G: number,
): { mean: Float64Array; rstd: Float64Array } {
  const s = C / G;
  const mean = new Float64Array(N * G);
  const rstd = new Float64Array(N * G);
  const sum = new Float64Array(C);
  const sumSq = new Float64Array(C);
  const count = P * s;
  for (let n = 0; n < N; n++) {
    sum.fill(0);
    sumSq.fill(0);
    for (let p = 0; p < P; p++) {
      const base = (n * P + p) * C;
      for (let c = 0; c < C; c++) {
        const v = x[base + c]!;
        sum[c]! += v;
        sumSq[c]! += v * v;
      }
    }
    for (let g = 0; g < G; g++) {
      let a = 0;
      let b = 0;
      for (let c = g * s; c < (g + 1) * s; c++) {
        a += sum[c]!;
        b += sumSq[c]!;
      }
      const m = a / count;
      mean[n * G + g] = m;
      rstd[n * G + g] = 1 / Math.sqrt(Math.max(b / count - m * m, 0) + GROUP_NORM_EPSILON);
    }
  }
  return { mean, rstd };
}

function forwardLoop(
  x: ArrayLike<number>,
  scale: ArrayLike<number>,
  shift: ArrayLike<number>,
  y: Float32Array,
  N: number,
  C: number,
  G: number,
): void {
  const P = x.length / (N * C);
  const s = C / G;
  const { mean, rstd } = statistics(x, N, P, C, G);
  const a = new Float32Array(C);
  const b = new Float32Array(C);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const k = n * G + Math.floor(c / s);
      a[c] = rstd[k]! * scale[c]!;
      b[c] = shift[c]! - mean[k]! * rstd[k]! * scale[c]!;
    }
    for (let p = 0; p < P; p++) {
      const base = (n * P + p) * C;
      for (let c = 0; c < C; c++) y[base + c] = x[base + c]! * a[c]! + b[c]!;
    }
  }
}

/**
 * With x̂ = (x − μ)·r and dx̂ = dy·γ: dγ = Σ dy·x̂, dβ = Σ dy, and per sample and group (M elements)
 * dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)).
 */
function backwardLoop(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  scale: ArrayLike<number>,
  dx: Float32Array,
  dScale: Float32Array,
  dShift: Float32Array,
  N: number,
  C: number,
  G: number,
): void {
  const P = x.length / (N * C);
  const s = C / G;
  const M = P * s;
  const { mean, rstd } = statistics(x, N, P, C, G);
  const sumDy = new Float64Array(C);
  const sumDyX = new Float64Array(C);
  const dScale64 = new Float64Array(C);
  const dShift64 = new Float64Array(C);
  const a = new Float32Array(C);
  const b = new Float32Array(C);
  for (let n = 0; n < N; n++) {
    sumDy.fill(0);
    sumDyX.fill(0);
    for (let p = 0; p < P; p++) {
      const base = (n * P + p) * C;
      for (let c = 0; c < C; c++) {
        const d = dy[base + c]!;
        sumDy[c]! += d;
        sumDyX[c]! += d * x[base + c]!;
      }
    }
    for (let g = 0; g < G; g++) {
      const k = n * G + g;
      const m = mean[k]!;
      const r = rstd[k]!;
      // Σ dx̂ and Σ dx̂·x̂ over the group.
      let sumD = 0;
      let sumDXhat = 0;
      for (let c = g * s; c < (g + 1) * s; c++) {
        const dyXhat = r * (sumDyX[c]! - m * sumDy[c]!);
        dScale64[c]! += dyXhat;
        dShift64[c]! += sumDy[c]!;
        sumD += scale[c]! * sumDy[c]!;
        sumDXhat += scale[c]! * dyXhat;
      }
      const meanD = sumD / M;
      const meanDXhat = sumDXhat / M;
      // dx = r·(γ·dy − meanD − (x − μ)·r·meanDXhat) = a_c·dy + b_g·x + e_g; b and e folded per channel below.
      for (let c = g * s; c < (g + 1) * s; c++) a[c] = r * scale[c]!;
      const bx = -r * r * meanDXhat;
      const e = -r * meanD + m * r * r * meanDXhat;
      for (let c = g * s; c < (g + 1) * s; c++) b[c] = bx;
      for (let p = 0; p < P; p++) {
        const base = (n * P + p) * C;
        for (let c = g * s; c < (g + 1) * s; c++) {
          dx[base + c] = a[c]! * dy[base + c]! + b[c]! * x[base + c]! + e;
        }
      }
    }
  }
  for (let c = 0; c < C; c++) {
    dScale[c] = dScale64[c]!;
    dShift[c] = dShift64[c]!;
  }
}

interface KernelBackend {
  // wasm
  makeOutput?(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap?(t: TensorInfo): Float32Array;
  // cpu
  data?: { get(dataId: object): { values: unknown } };
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Float32Array): TensorInfo;
}

/** Reads inputs and allocates outputs on the cpu or wasm backend. */
function io(backend: KernelBackend) {
  if (backend.makeOutput && backend.typedArrayFromHeap) {
    // wasm: allocate every output first (allocation may grow the heap and detach earlier views).
    return {
      outputs(shapes: number[][]): { infos: TensorInfo[]; views: () => Float32Array[] } {
        const infos = shapes.map((shape) => backend.makeOutput!(shape, 'float32'));
        return { infos, views: () => infos.map((info) => backend.typedArrayFromHeap!(info)) };
      },
      read: (info: TensorInfo) => backend.typedArrayFromHeap!(info),
    };
  }
  return {
    outputs(shapes: number[][]): { infos: TensorInfo[]; views: () => Float32Array[] } {
      const arrays = shapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
      const infos = shapes.map((shape, i) => backend.makeTensorInfo!(shape, 'float32', arrays[i]!));
      return { infos, views: () => arrays };
    },
    read: (info: TensorInfo) => backend.data!.get(info.dataId).values as Float32Array,
  };
}

interface FusedKernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: KernelBackend;
  attrs: Record<string, unknown>;
}

function forwardKernel({ inputs, backend, attrs }: FusedKernelArgs): TensorInfo {
  const x = inputs.x!;
  const C = x.shape[x.shape.length - 1]!;
  const access = io(backend);
  const { infos, views } = access.outputs([x.shape]);
  const [y] = views();
  forwardLoop(
    access.read(x),
    access.read(inputs.scale!),
    access.read(inputs.shift!),
    y!,
    x.shape[0]!,
    C,
    attrs.groups as number,
  );
  return infos[0]!;
}

function backwardKernel({ inputs, backend, attrs }: FusedKernelArgs): TensorInfo[] {
  const x = inputs.x!;
  const C = x.shape[x.shape.length - 1]!;
  const access = io(backend);
  const { infos, views } = access.outputs([x.shape, [C], [C]]);
  const [dx, dScale, dShift] = views();
  backwardLoop(
    access.read(inputs.dy!),
    access.read(x),
    access.read(inputs.scale!),
    dx!,
    dScale!,
    dShift!,
    x.shape[0]!,
    C,
    attrs.groups as number,
  );
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
