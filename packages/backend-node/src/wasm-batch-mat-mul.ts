import { PiflowError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * The wasm backend's BatchMatMul runs ~10× slower when asked to transpose an operand (`transposeA` /
 * `transposeB`) than on operands that are already laid out, and tfjs's own BatchMatMul gradient asks for
 * exactly those transposes. This override materialises the transposes with the wasm Transpose kernel and
 * then calls the stock kernel without flags: the same arithmetic, in the fast layout.
 */

const stockByOverride = new WeakMap<tf.KernelFunc, tf.KernelConfig>();

interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

interface WasmBackendLike {
  disposeData(dataId: object): boolean;
}

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return perm;
}

function makeOverride(stock: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    if (!attrs.transposeA && !attrs.transposeB) return stock.kernelFunc(args);
    const transpose = tf.getKernel('Transpose', 'wasm');
    if (!transpose) return stock.kernelFunc(args);
    const backend = args.backend as WasmBackendLike;
    const { a, b } = args.inputs as { a: TensorInfoLike; b: TensorInfoLike };
    const temporaries: TensorInfoLike[] = [];
    const materialise = (x: TensorInfoLike): TensorInfoLike => {
      const t = transpose.kernelFunc({
        inputs: { x } as tf.NamedTensorInfoMap,
        backend: args.backend,
        attrs: { perm: swapLastTwo(x.shape.length) },
      }) as TensorInfoLike;
      temporaries.push(t);
      return t;
    };
    try {
      return stock.kernelFunc({
        inputs: {
          a: attrs.transposeA ? materialise(a) : a,
          b: attrs.transposeB ? materialise(b) : b,
        } as tf.NamedTensorInfoMap,
        backend: args.backend,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temporaries) backend.disposeData(t.dataId);
    }
  };
  const override: tf.KernelConfig = {
    kernelName: tf.BatchMatMul,
    backendName: 'wasm',
    kernelFunc,
  };
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
 * Replaces the wasm backend's BatchMatMul kernel with one that materialises transposes before calling the
 * stock kernel. Import `@tensorflow/tfjs-backend-wasm` first (`setupWasm` does both). Returns false when the
 * fix was already installed. Works before or after the wasm backend is initialised.
 */
export function installWasmBatchMatMulFix(): boolean {
  const current = tf.getKernel(tf.BatchMatMul, 'wasm');
  if (!current) {
    throw new PiflowError(
      'The wasm backend has registered no BatchMatMul kernel: import "@tensorflow/tfjs-backend-wasm" (with the same version as @tensorflow/tfjs-core) before installing the BatchMatMul fix, or call setupWasm().',
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
