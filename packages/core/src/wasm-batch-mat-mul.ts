import * as tf from '@tensorflow/tfjs-core';
import { PiflowError } from './errors';
import { convFilterGradOnWasm, type WasmHeapBackend } from './wasm-conv-filter-grad';

/**
 * The wasm backend's BatchMatMul runs ~10× slower when asked to transpose an operand (`transposeA` /
 * `transposeB`) than on operands already laid out, and tfjs's own BatchMatMul gradient (and tf.layers' fused
 * matMul gradient) asks for exactly those transposes. A weight gradient aᵀ·b of one batch with many rows
 * (≥ 64, b's columns a multiple of 4) runs as a 1×1 convolution's filter gradient (the SIMD kernel of
 * wasm-conv-filter-grad.ts, split over the wasm thread pool). Otherwise this override materialises the
 * cheaper transpose with whatever wasm Transpose kernel is registered and calls the stock kernel without
 * flags: aᵀ·b as
 * transpose(a)·b or (bᵀ·a)ᵀ, a·bᵀ as a·transpose(b) or (b·aᵀ)ᵀ, aᵀ·bᵀ as (b·a)ᵀ. The same sums (float32
 * rounding may differ in the last bits because the summation order differs). The one BatchMatMul override of
 * the project: `setupWasm` (@piflow/backend-node) and the wasm training kernels (@piflow/models) install it.
 */

interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

interface WasmBackendLike {
  disposeData(dataId: object): boolean;
}

const stockByOverride = new WeakMap<tf.KernelFunc, tf.KernelConfig>();

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

/** Bytes of a and b per row of positions the weight-gradient kernel walks at a time. */
const L1_ROW_BYTES = 32 * 1024;

/** aᵀ·b for a [1…, K, M] and b [1…, K, N] as the filter gradient of a 1×1 convolution over K positions. */
function weightGradient(backend: WasmHeapBackend, a: TensorInfoLike, b: TensorInfoLike) {
  const rank = a.shape.length;
  if (b.shape.length !== rank || size(a.shape.slice(0, -2)) !== 1 || size(b.shape.slice(0, -2)) !== 1) {
    return undefined;
  }
  const [K, M] = a.shape.slice(-2) as [number, number];
  const N = b.shape[rank - 1]!;
  if (K < 64 || b.shape[rank - 2] !== K) return undefined;
  // the K positions as rows of W (the largest divisor of K whose row of a and b fits in L1; else one row)
  let W = K;
  for (let w = Math.min(K, Math.floor(L1_ROW_BYTES / ((M + N) * 4))); w >= 8; w--) {
    if (K % w === 0) {
      W = w;
      break;
    }
  }
  const H = K / W;
  const shape = { H, W, C: M, Ho: H, Wo: W, Co: N, kh: 1, kw: 1, top: 0, left: 0 };
  return convFilterGradOnWasm(backend, shape, 1, a, b, [...a.shape.slice(0, -2), M, N]);
}

function makeOverride(stock: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    const transposeA = Boolean(attrs.transposeA);
    const transposeB = Boolean(attrs.transposeB);
    if (!transposeA && !transposeB) return stock.kernelFunc(args);
    const transposeKernel = tf.getKernel('Transpose', 'wasm');
    if (!transposeKernel) return stock.kernelFunc(args);
    const backend = args.backend as unknown as WasmBackendLike;
    const { a, b } = args.inputs as unknown as { a: TensorInfoLike; b: TensorInfoLike };
    const temporaries: TensorInfoLike[] = [];
    const keep = (t: TensorInfoLike) => {
      temporaries.push(t);
      return t;
    };
    const t = (x: TensorInfoLike) =>
      transposeKernel.kernelFunc({
        inputs: { x } as unknown as tf.NamedTensorInfoMap,
        backend: args.backend,
        attrs: { perm: swapLastTwo(x.shape.length) },
      }) as TensorInfoLike;
    const plain = (x: TensorInfoLike, y: TensorInfoLike) =>
      stock.kernelFunc({
        inputs: { a: x, b: y } as unknown as tf.NamedTensorInfoMap,
        backend: args.backend,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      }) as TensorInfoLike;
    if (transposeA && !transposeB) {
      const out = weightGradient(args.backend as unknown as WasmHeapBackend, a, b);
      if (out) return out as unknown as tf.TensorInfo;
    }
    try {
      if (transposeA && transposeB) return t(keep(plain(b, a))) as unknown as tf.TensorInfo;
      const aRows = a.shape[a.shape.length - (transposeA ? 1 : 2)]!;
      const bCols = b.shape[b.shape.length - (transposeB ? 2 : 1)]!;
      const outSize = size(a.shape.slice(0, -2)) * aRows * bCols;
      if (transposeA) {
        // aᵀ·b: transpose a, or (bᵀ·a)ᵀ, whichever moves fewer values
        if (size(a.shape) <= size(b.shape) + outSize) return plain(keep(t(a)), b) as unknown as tf.TensorInfo;
        return t(keep(plain(keep(t(b)), a))) as unknown as tf.TensorInfo;
      }
      // a·bᵀ: transpose b, or (b·aᵀ)ᵀ
      if (size(b.shape) <= size(a.shape) + outSize) return plain(a, keep(t(b))) as unknown as tf.TensorInfo;
      return t(keep(plain(b, keep(t(a))))) as unknown as tf.TensorInfo;
    } finally {
      for (const x of temporaries) backend.disposeData(x.dataId);
    }
  };
  const override: tf.KernelConfig = { kernelName: tf.BatchMatMul, backendName: 'wasm', kernelFunc };
  if (stock.setupFunc) override.setupFunc = stock.setupFunc;
  if (stock.disposeFunc) override.disposeFunc = stock.disposeFunc;
  stockByOverride.set(kernelFunc, stock);
  return override;
}

/** Whether the faster wasm BatchMatMul is the registered one. */
export function isWasmBatchMatMulFixInstalled(): boolean {
  const current = tf.getKernel(tf.BatchMatMul, 'wasm');
  return current !== undefined && stockByOverride.has(current.kernelFunc);
}

/**
 * Replaces the wasm backend's BatchMatMul kernel with the override above. Import
 * `@tensorflow/tfjs-backend-wasm` first. Returns false when it was already installed. Works before or after
 * the wasm backend is initialised.
 */
export function installWasmBatchMatMulFix(): boolean {
  const current = tf.getKernel(tf.BatchMatMul, 'wasm');
  if (!current) {
    throw new PiflowError(
      'The wasm backend has registered no BatchMatMul kernel: import "@tensorflow/tfjs-backend-wasm" (with the same version as @tensorflow/tfjs-core) before installing the BatchMatMul fix, or call setupWasm() from @piflow/backend-node.',
    );
  }
  if (stockByOverride.has(current.kernelFunc)) return false;
  const override = makeOverride(current);
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel(override);
  return true;
}

/** Restores the stock wasm BatchMatMul kernel. Returns false when the fix was not installed. */
export function uninstallWasmBatchMatMulFix(): boolean {
  const current = tf.getKernel(tf.BatchMatMul, 'wasm');
  const stock = current && stockByOverride.get(current.kernelFunc);
  if (!stock) return false;
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel(stock);
  return true;
}
