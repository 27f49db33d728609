import { createRandom, registerGradients } from '@piflow/core';
import { countLeaks, maxAbsDifference } from '@piflow/core/testing';
import '@tensorflow/tfjs-backend-cpu';
import {
  installWasmBatchMatMulFix,
  isWasmBatchMatMulFixInstalled,
  uninstallWasmBatchMatMulFix,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupWasm } from './setup-wasm';

// float32 matMul over inner size ≤ 64 of values in [-1, 1]: both kernels sum the same products, so they agree
// to a few ulps; against a float64 reference the float32 rounding is ≤ 64·2⁻²⁴·|sum| ≈ 1e-5.
const KERNEL_TOLERANCE = 1e-5;
const REFERENCE_TOLERANCE = 5e-5;

function randomArray(seed: number, size: number): Float32Array {
  const random = createRandom(seed);
  return Float32Array.from({ length: size }, () => random.uniform() * 2 - 1);
}

/** float64 batched matMul of row-major arrays, with the batch of either side broadcast when it is 1. */
function matMulReference(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): Float64Array {
  const [ba, ra, ca] = aShape.length === 3 ? aShape : [1, ...aShape];
  const [bb, rb, cb] = bShape.length === 3 ? bShape : [1, ...bShape];
  const m = transposeA ? ca! : ra!;
  const k = transposeA ? ra! : ca!;
  const n = transposeB ? rb! : cb!;
  const batch = Math.max(ba!, bb!);
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const ao = (ba === 1 ? 0 : t) * ra! * ca!;
    const bo = (bb === 1 ? 0 : t) * rb! * cb!;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transposeA ? a[ao + p * ca! + i]! : a[ao + i * ca! + p]!;
          const bv = transposeB ? b[bo + j * cb! + p]! : b[bo + p * cb! + j]!;
          s += av * bv;
        }
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

const cases = [
  { aShape: [17, 33], bShape: [33, 9], transposeA: false, transposeB: false },
  { aShape: [33, 17], bShape: [33, 9], transposeA: true, transposeB: false },
  { aShape: [17, 33], bShape: [9, 33], transposeA: false, transposeB: true },
  { aShape: [33, 17], bShape: [9, 33], transposeA: true, transposeB: true },
  { aShape: [3, 40, 7], bShape: [3, 5, 40], transposeA: true, transposeB: true },
  { aShape: [4, 6, 64], bShape: [1, 8, 64], transposeA: false, transposeB: true },
  { aShape: [1, 64, 6], bShape: [4, 64, 8], transposeA: true, transposeB: false },
];

describe('wasm BatchMatMul fix', () => {
  beforeAll(async () => {
    await registerGradients();
    await setupWasm({ batchMatMulFix: false });
    await tf.setBackend('wasm');
  });
  afterAll(() => {
    uninstallWasmBatchMatMulFix();
  });

  it('installs once, uninstalls back to the stock kernel', () => {
    const stock = tf.getKernel('BatchMatMul', 'wasm');
    expect(isWasmBatchMatMulFixInstalled()).toBe(false);
    expect(installWasmBatchMatMulFix()).toBe(true);
    expect(installWasmBatchMatMulFix()).toBe(false);
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc).not.toBe(stock?.kernelFunc);
    expect(uninstallWasmBatchMatMulFix()).toBe(true);
    expect(uninstallWasmBatchMatMulFix()).toBe(false);
    expect(tf.getKernel('BatchMatMul', 'wasm')).toBe(stock);
  });

  it.each(cases)(
    'matches the stock kernel and a float64 reference: a $aShape (T=$transposeA) · b $bShape (T=$transposeB)',
    ({ aShape, bShape, transposeA, transposeB }) => {
      const aData = randomArray(
        1,
        aShape.reduce((x, y) => x * y),
      );
      const bData = randomArray(
        2,
        bShape.reduce((x, y) => x * y),
      );
      const a = tf.tensor(aData, aShape);
      const b = tf.tensor(bData, bShape);
      const run = () => {
        const y = tf.matMul(a, b, transposeA, transposeB);
        const values = y.dataSync().slice();
        const shape = y.shape;
        y.dispose();
        return { values, shape };
      };
      const stock = run();
      installWasmBatchMatMulFix();
      const backend = tf.backend() as unknown as { numDataIds(): number };
      const idsBefore = backend.numDataIds();
      const { result: fixedTensor, leaked } = countLeaks(() => tf.matMul(a, b, transposeA, transposeB));
      expect(leaked).toBe(0);
      const fixed = { values: fixedTensor.dataSync().slice(), shape: fixedTensor.shape };
      fixedTensor.dispose();
      // The transposed copies made inside the kernel are freed too.
      expect(backend.numDataIds()).toBe(idsBefore);
      uninstallWasmBatchMatMulFix();

      expect(fixed.shape).toEqual(stock.shape);
      expect(maxAbsDifference(fixed.values, stock.values)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
      const reference = matMulReference(aData, aShape, bData, bShape, transposeA, transposeB);
      expect(maxAbsDifference(fixed.values, reference)).toBeLessThanOrEqual(REFERENCE_TOLERANCE);
      tf.dispose([a, b]);
    },
  );

  it('gives the same gradients as the stock kernel, and matches the analytic float64 gradients', () => {
    // f(a, b) = Σ w ⊙ (a · bᵀ); ∂f/∂a = w · b, ∂f/∂b = wᵀ · a. The BatchMatMul gradient itself runs matMuls with
    // transposeA/transposeB, so it goes through the overridden kernel.
    const [m, k, n] = [12, 20, 7];
    const aData = randomArray(3, m * k);
    const bData = randomArray(4, n * k);
    const wData = randomArray(5, m * n);
    const a = tf.tensor2d(aData, [m, k]);
    const b = tf.tensor2d(bData, [n, k]);
    const w = tf.tensor2d(wData, [m, n]);
    const gradients = () => {
      const { result, leaked } = countLeaks(() =>
        tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(w, tf.matMul(x, y, false, true))))([a, b]),
      );
      expect(leaked).toBe(0);
      const values = result.map((g) => g.dataSync().slice());
      tf.dispose(result);
      return values;
    };
    const stock = gradients();
    installWasmBatchMatMulFix();
    const fixed = gradients();
    uninstallWasmBatchMatMulFix();
    const daReference = matMulReference(wData, [m, n], bData, [n, k], false, false);
    const dbReference = matMulReference(wData, [m, n], aData, [m, k], true, false);
    expect(maxAbsDifference(fixed[0]!, stock[0]!)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
    expect(maxAbsDifference(fixed[1]!, stock[1]!)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
    expect(maxAbsDifference(fixed[0]!, daReference)).toBeLessThanOrEqual(REFERENCE_TOLERANCE);
    expect(maxAbsDifference(fixed[1]!, dbReference)).toBeLessThanOrEqual(REFERENCE_TOLERANCE);
    tf.dispose([a, b, w]);
  });

  it('survives re-activating the backend (the stock setup function is kept)', async () => {
    installWasmBatchMatMulFix();
    await tf.setBackend('cpu');
    await tf.setBackend('wasm');
    const y = tf.matMul(tf.tensor2d([[1, 2, 3]]), tf.tensor2d([[1, 0, 2]]), false, true);
    expect(Array.from(y.dataSync())).toEqual([7]);
    y.dispose();
    uninstallWasmBatchMatMulFix();
  });
});
