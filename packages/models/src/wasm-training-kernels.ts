import {
  describeValue,
  InvalidArgumentError,
  installWasmBatchMatMulFix,
  isWasmBatchMatMulFixInstalled,
  PiflowError,
  uninstallWasmBatchMatMulFix,
} from '@piflow/core';
import { convFilterGradOnWasm } from '@piflow/core/wasm';
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { groupNormSimd } from './group-norm-simd';

/**
 * Kernels that make training fast (and possible) on the tfjs wasm backend, for every caller — our networks,
 * tf.layers models and plain tf.grad code alike — because they replace or add wasm *kernels* (scoped to the
 * wasm backend), not gradients (which are global to all backends and would miss tf.layers' fused matMul
 * gradient, which calls matMul with transpose flags directly):
 *
 * - BatchMatMul with transposeA/transposeB: the stock kernel is ~10× slower with the flags than an
 *   explicit transpose + plain matMul: @piflow/core's `installWasmBatchMatMulFix` (the project's one
 *   BatchMatMul override) is installed with the others.
 * - Conv2DBackpropFilter: missing on wasm (conv training throws). Stride 1 (output channels a multiple of 4):
 *   @piflow/core/wasm's SIMD kernel in the heap, split over the wasm thread pool (≈ 60 GFLOP/s on two
 *   threads; 1.8× the route below). Otherwise dW = conv2d of x transposed to [C, H, W, N] with dy transposed
 *   to [Ho, Wo, N, Co] as the filter (dilation = the forward stride), transposed back; a 1×1 stride-1
 *   unpadded conv is a matMul xᵀ·dy.
 * - Conv2DBackpropInput (stride 1): the stock kernel is ~10× slower than a forward conv; dx = conv2d of dy
 *   with the filter flipped spatially and in/out channels swapped. Other strides use the stock kernel.
 * - Transpose: axes that stay adjacent are merged and size-1 axes dropped first; what is still of rank ≥ 5
 *   runs as a JS row copy (the stock kernel took 186 ms for a [64, 49, 3, 4, 32] attention-style permutation),
 *   the rest goes to the stock kernel at its reduced rank (fast up to rank 4).
 * - UnsortedSegmentSum: missing on wasm, needed by gather's gradient (e.g. tf.layers Embedding).
 * - Identity and Cast to the same dtype share the input's data (the stock kernels copy it; a U-Net training
 *   step made ~300 such copies through tfjs's gradients).
 * - Sum over leading axes (bias gradients): per-channel SIMD sums instead of a transpose and a row sum.
 * - AvgPoolGrad of pools whose windows tile the input (2×2 downsampling): a direct copy of dy / area.
 *
 * All results are the same sums as the stock kernels (float32 rounding may differ in the last bits because
 * the summation order differs).
 */

const MARK = Symbol.for('piflow.models.wasmTrainingKernel');
const KERNELS = [
  'AvgPoolGrad',
  'BatchMatMul',
  'Cast',
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'Identity',
  'Sum',
  'Transpose',
  'UnsortedSegmentSum',
] as const;

/** Names of the wasm kernels {@link registerWasmTrainingKernels} installs. */
export type WasmTrainingKernelName = (typeof KERNELS)[number];
export const wasmTrainingKernelNames: readonly WasmTrainingKernelName[] = KERNELS;

interface WasmBackend {
  wasm?: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  incRef(dataId: object): void;
  disposeData(dataId: object): boolean;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
}

const originals = new Map<string, KernelConfig | undefined>();

function stock(name: string): KernelFunc {
  const config = originals.get(name);
  if (!config) throw new PiflowError(`piflow wasm training kernels: no stock wasm kernel ${name}`);
  return config.kernelFunc;
}

/** Runs whatever kernel is registered for `name` on wasm now (ours where we replaced it). */
function run(name: string, backend: WasmBackend, inputs: Record<string, TensorInfo>, attrs = {}): TensorInfo {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new PiflowError(`piflow wasm training kernels: wasm kernel ${name} is not registered`);
  return config.kernelFunc({ inputs, backend: backend as never, attrs }) as TensorInfo;
}

function release(backend: WasmBackend, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// --------------------------------------------------------------------------------------------------------
// Transpose

/** Drops size-1 axes and merges runs of axes that stay adjacent and in order under the permutation. */
export function simplifyTranspose(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  const kept = shape.map((_, i) => i).filter((i) => shape[i] !== 1);
  const keptPerm = perm.filter((p) => shape[p] !== 1);
  // Merge consecutive output axes whose input axes are consecutive too.
  const groups: number[][] = [];
  for (const p of keptPerm) {
    const last = groups[groups.length - 1];
    if (last && kept.indexOf(p) === kept.indexOf(last[last.length - 1]!) + 1) last.push(p);
    else groups.push([p]);
  }
  const order = [...groups].sort((g, h) => g[0]! - h[0]!);
  const newShape = order.map((g) => g.reduce((n, axis) => n * shape[axis]!, 1));
  const newPerm = groups.map((g) => order.indexOf(g));
  return { shape: newShape, perm: newPerm };
}

function transpose(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const perm = attrs.perm as number[];
  const simple = simplifyTranspose(x.shape, perm);
  const rank = simple.shape.length;
  const outShape = perm.map((p) => x.shape[p]!);
  if (rank < 5 || (x.dtype !== 'float32' && x.dtype !== 'int32')) {
    // The stock kernel is fast up to rank 4: hand it the simplified (merged) problem.
    const out = stock('Transpose')({
      inputs: { x: { dataId: x.dataId, shape: simple.shape, dtype: x.dtype } },
      backend: backend as never,
      attrs: { perm: simple.perm },
    }) as TensorInfo;
    out.shape = outShape;
    return out;
  }
  const out = backend.makeOutput(outShape, x.dtype);
  // Views after makeOutput: allocating may grow (and move) the heap.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const inStrides = new Array<number>(rank);
  let stride = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = stride;
    stride *= simple.shape[i]!;
  }
  const dims = simple.perm.map((p) => simple.shape[p]!);
  const strides = simple.perm.map((p) => inStrides[p]!);
  const inner = dims[rank - 1]!;
  const innerStride = strides[rank - 1]!;
  const contiguous = innerStride === 1;
  const index = new Array<number>(rank - 1).fill(0);
  const rows = size(dims) / inner;
  let base = 0;
  let o = 0;
  for (let row = 0; row < rows; row++) {
    if (contiguous) {
      dst.set(src.subarray(base, base + inner), o);
      o += inner;
    } else {
      for (let i = 0, s = base; i < inner; i++, s += innerStride) dst[o++] = src[s]!;
    }
    // Odometer over the outer output axes.
    for (let k = rank - 2; k >= 0; k--) {
      index[k]!++;
      base += strides[k]!;
      if (index[k]! < dims[k]!) break;
      base -= strides[k]! * dims[k]!;
      index[k] = 0;
    }
  }
  return out;
}

// --------------------------------------------------------------------------------------------------------
// Conv2D gradients

type Pad =
  | 'valid'
  | 'same'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];

function convInfoOf(
  xShape: number[],
  filterShape: number[],
  attrs: Record<string, unknown>,
): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as number | [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    false,
    backend_util.convertConv2DDataFormat((attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC'),
  );
}

function conv2d(
  backend: WasmBackend,
  x: TensorInfo,
  filter: TensorInfo,
  strides: [number, number],
  dilations: [number, number],
  pads: [number, number, number, number],
): TensorInfo {
  return run(
    'Conv2D',
    backend,
    { x, filter },
    {
      strides,
      dilations,
      pad: [
        [0, 0],
        [pads[0], pads[1]],
        [pads[2], pads[3]],
        [0, 0],
      ],
      dataFormat: 'NHWC',
    },
  );
}

function conv2DBackpropInput(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const dy = inputs.dy!;
  const filter = inputs.filter!;
  const inputShape = attrs.inputShape as number[];
  const info = convInfoOf(inputShape, filter.shape, attrs);
  const { filterHeight: kh, filterWidth: kw, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo } = info;
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = H - Ho + kh - 1 - top;
  const right = W - Wo + kw - 1 - left;
  if (
    info.dataFormat !== 'channelsLast' ||
    info.strideHeight !== 1 ||
    info.strideWidth !== 1 ||
    Math.min(top, left, bottom, right) < 0
  ) {
    return stock('Conv2DBackpropInput')(args as never) as TensorInfo;
  }
  const [, , C, Co] = filter.shape as [number, number, number, number];
  // Flipped filter with in/out swapped: F'[p, q, o, c] = F[kh−1−p, kw−1−q, c, o] (small: a JS copy).
  const flipped = backend.makeOutput([kh, kw, Co, C], 'float32');
  const src = backend.typedArrayFromHeap(filter);
  const dst = backend.typedArrayFromHeap(flipped);
  for (let p = 0; p < kh; p++) {
    for (let q = 0; q < kw; q++) {
      const from = ((kh - 1 - p) * kw + (kw - 1 - q)) * C * Co;
      const to = (p * kw + q) * Co * C;
      for (let c = 0; c < C; c++) {
        for (let o = 0; o < Co; o++) dst[to + o * C + c] = src[from + c * Co + o]!;
      }
    }
  }
  const dx = conv2d(backend, dy, flipped, [1, 1], [1, 1], [top, bottom, left, right]);
  release(backend, flipped);
  return dx;
}

function conv2DBackpropFilter(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const dy = inputs.dy!;
  const filterShape = attrs.filterShape as [number, number, number, number];
  const info = convInfoOf(x.shape, filterShape, attrs);
  if (info.dataFormat !== 'channelsLast') {
    throw new PiflowError('piflow wasm Conv2DBackpropFilter supports NHWC (channels-last) only');
  }
  const [kh, kw, C, Co] = filterShape;
  const { inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo, strideHeight: sh, strideWidth: sw } = info;
  const N = x.shape[0]!;
  const { top, left } = info.padInfo;
  if (![N, Ho, Wo, Co].every((d, i) => dy.shape[i] === d)) {
    throw new PiflowError(
      `piflow wasm Conv2DBackpropFilter: dy has shape [${dy.shape}] but the convolution of x [${x.shape}] with a ` +
        `[${filterShape}] filter gives [${[N, Ho, Wo, Co]}]; use 'same' or 'valid' padding`,
    );
  }
  if (sh === 1 && sw === 1 && info.dilationHeight === 1 && info.dilationWidth === 1) {
    const shape = { H, W, C, Ho, Wo, Co, kh, kw, top, left };
    const out = convFilterGradOnWasm(backend as never, shape, N, x, dy, filterShape);
    if (out) return out as TensorInfo;
  }
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && top === 0 && left === 0 && Ho === H && Wo === W) {
    // 1×1: dW = x[NHW, C]ᵀ · dy[NHW, Co].
    const x2 = run('Reshape', backend, { x }, { shape: [N * H * W, C] });
    const dy2 = run('Reshape', backend, { x: dy }, { shape: [N * H * W, Co] });
    const dw = run('BatchMatMul', backend, { a: x2, b: dy2 }, { transposeA: true, transposeB: false });
    release(backend, x2, dy2);
    const out = run('Reshape', backend, { x: dw }, { shape: filterShape });
    release(backend, dw);
    return out;
  }
  // Rows/cols of x the last output tap reads: (Ho − 1)·s + k; pad the far side to exactly that.
  const bottom = (Ho - 1) * sh + kh - H - top;
  const right = (Wo - 1) * sw + kw - W - left;
  if (bottom < 0 || right < 0) return conv2DBackpropFilterLoop(args, info);
  const xt = run('Transpose', backend, { x }, { perm: [3, 1, 2, 0] }); // [C, H, W, N]
  const dyt = run('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] }); // [Ho, Wo, N, Co]
  // out[c, p, q, o] = Σ_{i,j,n} xt[c, p + i·s − top, q + j·s − left, n]·dyt[i, j, n, o]: stride 1, dilation s.
  const dwt = conv2d(backend, xt, dyt, [1, 1], [sh, sw], [top, bottom, left, right]); // [C, kh, kw, Co]
  release(backend, xt, dyt);
  const out = run('Transpose', backend, { x: dwt }, { perm: [1, 2, 0, 3] });
  release(backend, dwt);
  return out;
}

/** Direct loops for the cases the conv formulation does not cover (a padded side the conv never reads). */
function conv2DBackpropFilterLoop(args: KernelArgs, info: backend_util.Conv2DInfo): TensorInfo {
  const { inputs, backend, attrs } = args;
  const filterShape = attrs.filterShape as [number, number, number, number];
  const [kh, kw, C, Co] = filterShape;
  const out = backend.makeOutput(filterShape, 'float32');
  const x = backend.typedArrayFromHeap(inputs.x!);
  const dy = backend.typedArrayFromHeap(inputs.dy!);
  const dw = backend.typedArrayFromHeap(out);
  dw.fill(0);
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        const dyBase = ((n * Ho + i) * Wo + j) * Co;
        for (let p = 0; p < kh; p++) {
          const r = i * sh + p - top;
          if (r < 0 || r >= H) continue;
          for (let q = 0; q < kw; q++) {
            const c0 = j * sw + q - left;
            if (c0 < 0 || c0 >= W) continue;
            const xBase = ((n * H + r) * W + c0) * C;
            const wBase = (p * kw + q) * C * Co;
            for (let c = 0; c < C; c++) {
              const xv = x[xBase + c]!;
              for (let o = 0; o < Co; o++) dw[wBase + c * Co + o]! += xv * dy[dyBase + o]!;
            }
          }
        }
      }
    }
  }
  return out;
}

// --------------------------------------------------------------------------------------------------------
// Identity, Cast to the same dtype: the output shares the input's data (as Reshape does on wasm, and as the
// cpu backend's Identity does); the stock kernels copy it (a gradient step made ~300 such copies).

function identity(args: KernelArgs): TensorInfo {
  const { inputs, backend } = args;
  const x = inputs.x!;
  if (x.dtype === 'string') return stock('Identity')(args as never) as TensorInfo;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

function cast(args: KernelArgs): TensorInfo {
  const x = args.inputs.x!;
  if (args.attrs.dtype === x.dtype && x.dtype !== 'string') return identity(args);
  return stock('Cast')(args as never) as TensorInfo;
}

// --------------------------------------------------------------------------------------------------------
// Sum over leading axes (a bias's gradient: [N, H, W, C] → [C]): per-channel sums over the rows with the
// GroupNorm module's SIMD pass (float32 sums of SUM_ROWS rows, added in float64); the stock kernel transposes
// the reduced axes to the end first (~3× slower). Other reductions go to the stock kernel.

const SUM_ROWS = 256;

function sum(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const rank = x.shape.length;
  const axes = [attrs.axis as number | number[]]
    .flat()
    .map((a) => (a < 0 ? a + rank : a))
    .sort((a, b) => a - b);
  const leading = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
  const rest = x.shape.slice(axes.length);
  const C = size(rest);
  const memory = backend.wasm?.wasmMemory ?? backend.wasm?.asm?.memory;
  const kernels = leading && x.dtype === 'float32' && memory ? groupNormSimd(C, memory) : undefined;
  if (!kernels) return stock('Sum')(args as never) as TensorInfo;
  const out = backend.makeOutput(attrs.keepDims ? [...axes.map(() => 1), ...rest] : rest, 'float32');
  const scratch = backend.makeOutput([2 * C], 'float32');
  const rows = size(x.shape) / C;
  const at = backend.typedArrayFromHeap(x).byteOffset;
  const partial = backend.typedArrayFromHeap(scratch);
  const acc = new Float64Array(C);
  for (let r = 0; r < rows; r += SUM_ROWS) {
    kernels.sums(at + r * C * 4, Math.min(SUM_ROWS, rows - r), partial.byteOffset);
    for (let c = 0; c < C; c++) acc[c]! += partial[c]!;
  }
  backend.typedArrayFromHeap(out).set(acc);
  release(backend, scratch);
  return out;
}

// --------------------------------------------------------------------------------------------------------
// AvgPoolGrad of pools whose windows tile the input (filter = stride, no padding, e.g. 2×2 downsampling):
// each input position gets its window's dy / (filter area). The stock kernel is general and ~5× slower.

function avgPoolGrad(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const dy = inputs.dy!;
  const input = inputs.input!;
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize as [number, number] | number,
    attrs.strides as [number, number] | number,
    1,
    attrs.pad as 'valid' | 'same' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, padInfo } = info;
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: Ho, outWidth: Wo, inChannels: C } = info;
  const tiles =
    fh === sh &&
    fw === sw &&
    padInfo.top === 0 &&
    padInfo.left === 0 &&
    Ho * sh === H &&
    Wo * sw === W &&
    dy.dtype === 'float32' &&
    [N, Ho, Wo, C].every((d, i) => dy.shape[i] === d);
  if (!tiles) return stock('AvgPoolGrad')(args as never) as TensorInfo;
  const out = backend.makeOutput(input.shape, 'float32');
  const src = backend.typedArrayFromHeap(dy);
  const dst = backend.typedArrayFromHeap(out);
  const scale = 1 / (fh * fw);
  const row = new Float32Array(Wo * C);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < Ho; i++) {
      const from = (n * Ho + i) * Wo * C;
      for (let k = 0; k < row.length; k++) row[k] = src[from + k]! * scale;
      for (let a = 0; a < fh; a++) {
        let to = (n * H + i * sh + a) * W * C;
        for (let j = 0; j < Wo; j++) {
          const window = row.subarray(j * C, (j + 1) * C);
          for (let b = 0; b < fw; b++, to += C) dst.set(window, to);
        }
      }
    }
  }
  return out;
}

// --------------------------------------------------------------------------------------------------------
// UnsortedSegmentSum

function unsortedSegmentSum(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const ids = inputs.segmentIds!;
  const numSegments = attrs.numSegments as number;
  const inner = size(x.shape.slice(ids.shape.length));
  const rows = size(ids.shape);
  const out = backend.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const seg = backend.typedArrayFromHeap(ids);
  const dst = backend.typedArrayFromHeap(out);
  dst.fill(0);
  for (let r = 0; r < rows; r++) {
    const s = seg[r]!;
    if (s < 0 || s >= numSegments) continue;
    const from = r * inner;
    const to = s * inner;
    for (let i = 0; i < inner; i++) dst[to + i]! += src[from + i]!;
  }
  return out;
}

// --------------------------------------------------------------------------------------------------------
// Registration

const implementations: Record<string, (args: KernelArgs) => TensorInfo> = {
  AvgPoolGrad: avgPoolGrad,
  Cast: cast,
  Identity: identity,
  Sum: sum,
  Conv2DBackpropFilter: conv2DBackpropFilter,
  Conv2DBackpropInput: conv2DBackpropInput,
  Transpose: transpose,
  UnsortedSegmentSum: unsortedSegmentSum,
};

function isOurs(config: KernelConfig | undefined): boolean {
  return Boolean(config && (config as unknown as Record<symbol, unknown>)[MARK]);
}

/** Whether the piflow wasm training kernels are installed now (all of them). */
export function wasmTrainingKernelsRegistered(): boolean {
  return KERNELS.every((name) =>
    name === 'BatchMatMul' ? isWasmBatchMatMulFixInstalled() : isOurs(tf.getKernel(name, 'wasm')),
  );
}

/**
 * Installs the wasm training kernels (see the module comment) in place of / beside the stock wasm kernels.
 * Idempotent; affects only the wasm backend. Needs `@tensorflow/tfjs-backend-wasm` imported first (its
 * kernels are what gets wrapped). `kernels` picks a subset (default: all). Returns the names of the kernels
 * it installed now (empty if already in).
 */
export function registerWasmTrainingKernels(
  kernels: readonly WasmTrainingKernelName[] = KERNELS,
): WasmTrainingKernelName[] {
  if (!Array.isArray(kernels) || kernels.some((k) => !KERNELS.includes(k))) {
    throw new InvalidArgumentError(
      'kernels',
      `an array of kernel names from ${KERNELS.join(', ')}`,
      describeValue(kernels),
    );
  }
  if (!tf.getKernel('Conv2D', 'wasm')) {
    throw new PiflowError(
      "registerWasmTrainingKernels: the wasm backend's kernels are not registered; import '@tensorflow/tfjs-backend-wasm' first",
    );
  }
  const installed: WasmTrainingKernelName[] = [];
  for (const name of kernels) {
    if (name === 'BatchMatMul') {
      if (installWasmBatchMatMulFix()) installed.push(name);
      continue;
    }
    const current = tf.getKernel(name, 'wasm');
    if (isOurs(current)) continue;
    originals.set(name, current);
    if (current) tf.unregisterKernel(name, 'wasm');
    const config = {
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: implementations[name] as unknown as KernelFunc,
      ...(current?.setupFunc ? { setupFunc: current.setupFunc } : {}),
      ...(current?.disposeFunc ? { disposeFunc: current.disposeFunc } : {}),
      [MARK]: true,
    } as KernelConfig;
    tf.registerKernel(config);
    installed.push(name);
  }
  return installed;
}

/** Restores the stock wasm kernels (for before/after benchmarks); a no-op when ours are not installed. */
export function unregisterWasmTrainingKernels(): void {
  uninstallWasmBatchMatMulFix();
  for (const name of KERNELS) {
    if (!isOurs(tf.getKernel(name, 'wasm')) || !originals.has(name)) continue;
    tf.unregisterKernel(name, 'wasm');
    const original = originals.get(name);
    if (original) tf.registerKernel(original);
    originals.delete(name);
  }
}

/** Installs the kernels when the active backend is wasm (what the training functions call). */
export function ensureWasmTrainingKernels(): void {
  if (tf.getBackend() === 'wasm' && !wasmTrainingKernelsRegistered()) registerWasmTrainingKernels();
}
