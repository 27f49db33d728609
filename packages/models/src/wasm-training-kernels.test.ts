import { createRandom } from '@piflow/core';
import { relativeError, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  registerWasmTrainingKernels,
  simplifyTranspose,
  unregisterWasmTrainingKernels,
  wasmTrainingKernelsRegistered,
} from './wasm-training-kernels';

// Every wasm result is compared with the stock cpu backend (an independent implementation) on the same
// inputs. Tolerance: relative L2 error ≤ 1e-5 for matMul/transpose (same sums, another order), ≤ 1e-4 for
// conv gradients (sums over up to N·H·W terms in float32).

const random = createRandom(11);
const values = (n: number) => random.fillNormal(new Float32Array(n));

/** Runs fn on a backend with plain arrays in and out. */
async function on<T>(backend: string, fn: () => T): Promise<T> {
  await useBackend(backend);
  return fn();
}

function read(t: tf.Tensor | tf.Tensor[]): Float32Array[] {
  const list = Array.isArray(t) ? t : [t];
  const out = list.map((x) => Float32Array.from(x.dataSync()));
  tf.dispose(list);
  return out;
}

describe('wasm training kernels', () => {
  beforeAll(async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
  });
  afterAll(async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
  });

  it('registration is idempotent and reversible', () => {
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    expect(registerWasmTrainingKernels()).toEqual([]);
    unregisterWasmTrainingKernels();
    expect(wasmTrainingKernelsRegistered()).toBe(false);
    expect(registerWasmTrainingKernels()).toContain('BatchMatMul');
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    expect(() => registerWasmTrainingKernels(['Conv3D' as 'Transpose'])).toThrow(/`kernels`/);
  });

  it('simplifies transposes by dropping size-1 axes and merging adjacent ones', () => {
    expect(simplifyTranspose([2, 3, 4, 5], [0, 1, 3, 2])).toEqual({ shape: [6, 4, 5], perm: [0, 2, 1] });
    expect(simplifyTranspose([2, 1, 4, 5], [3, 1, 2, 0])).toEqual({ shape: [2, 4, 5], perm: [2, 1, 0] });
    expect(simplifyTranspose([2, 3, 4], [0, 1, 2])).toEqual({ shape: [24], perm: [0] });
  });

  const matMulCases: Array<[number[], number[], boolean, boolean]> = [
    [[7, 5], [5, 9], false, false],
    [[5, 7], [5, 9], true, false],
    [[7, 5], [9, 5], false, true],
    [[5, 7], [9, 5], true, true],
    [[64, 3], [64, 300], true, false], // the SIMD weight-gradient kernel (64 rows, 300 columns)
    [[1, 2000, 20], [1, 2000, 12], true, false], // the SIMD kernel, rows as 40 × 50
    [[997, 8], [997, 16], true, false], // the SIMD kernel, a prime number of rows (one long row)
    [[48, 3], [48, 300], true, false], // too few rows for it: transposes b and the output instead of a
    [[300, 8], [2, 8], false, true],
    [[3, 4, 6], [3, 4, 5], true, false],
    [[3, 6, 4], [3, 5, 4], false, true],
    [[2, 4, 6], [6, 5], false, false],
    [[1, 2, 50], [40, 50], false, true], // (b·aᵀ)ᵀ with a broadcast batch axis
    [[1, 300, 64], [300, 3], true, false], // (bᵀ·a)ᵀ with a broadcast batch axis
  ];
  for (const [aShape, bShape, tA, tB] of matMulCases) {
    it(`BatchMatMul ${JSON.stringify(aShape)}${tA ? 'ᵀ' : ''} · ${JSON.stringify(bShape)}${tB ? 'ᵀ' : ''} matches cpu`, async () => {
      const a = values(aShape.reduce((x, y) => x * y));
      const b = values(bShape.reduce((x, y) => x * y));
      const f = () => read(tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), tA, tB)))[0]!;
      const before = await on('wasm', () => tf.memory().numTensors);
      const wasm = await on('wasm', f);
      expect(tf.memory().numTensors).toBe(before);
      const cpu = await on('cpu', f);
      expect(relativeError(wasm, cpu)).toBeLessThan(1e-5);
    });
  }

  for (const [shape, perm] of [
    [
      [4, 5, 3, 6],
      [3, 1, 2, 0],
    ],
    [
      [4, 5, 3, 6],
      [1, 2, 0, 3],
    ],
    [
      [6, 7, 3, 4, 5],
      [0, 2, 1, 3, 4],
    ],
    [
      [2, 3, 4, 5, 6],
      [4, 2, 0, 3, 1],
    ],
    [
      [6, 7, 3, 4, 5],
      [2, 0, 3, 1, 4],
    ],
    [
      [2, 1, 3, 4, 5, 2],
      [5, 3, 1, 0, 4, 2],
    ],
  ] as Array<[number[], number[]]>) {
    it(`Transpose ${JSON.stringify(shape)} by ${JSON.stringify(perm)} is exact`, async () => {
      const x = values(shape.reduce((p, q) => p * q));
      const f = () => read(tf.tidy(() => tf.transpose(tf.tensor(x, shape), perm)))[0]!;
      const wasm = await on('wasm', f);
      const cpu = await on('cpu', f);
      expect(Array.from(wasm)).toEqual(Array.from(cpu));
    });
  }

  type ConvCase = {
    x: [number, number, number, number];
    k: [number, number, number, number];
    stride: number;
    pad: 'same' | 'valid' | number;
  };
  const convCases: ConvCase[] = [
    { x: [3, 8, 8, 4], k: [3, 3, 4, 5], stride: 1, pad: 'same' },
    { x: [2, 7, 9, 3], k: [3, 3, 3, 6], stride: 1, pad: 'valid' },
    { x: [2, 6, 6, 8], k: [1, 1, 8, 4], stride: 1, pad: 'same' },
    { x: [2, 9, 9, 3], k: [5, 5, 3, 2], stride: 1, pad: 'same' },
    { x: [2, 8, 8, 3], k: [3, 3, 3, 4], stride: 2, pad: 'same' },
    { x: [2, 9, 8, 2], k: [3, 3, 2, 3], stride: 2, pad: 'valid' },
    { x: [2, 6, 6, 2], k: [3, 3, 2, 3], stride: 1, pad: 1 },
    // stride 1, output channels a multiple of 4: the SIMD filter-gradient kernel (every tiling it picks)
    { x: [3, 8, 8, 4], k: [3, 3, 4, 8], stride: 1, pad: 'same' },
    { x: [2, 7, 9, 3], k: [3, 3, 3, 4], stride: 1, pad: 'valid' },
    { x: [2, 9, 7, 6], k: [5, 5, 6, 12], stride: 1, pad: 'same' },
    { x: [5, 6, 5, 8], k: [3, 3, 8, 16], stride: 1, pad: 1 },
    { x: [4, 7, 7, 1], k: [3, 3, 1, 32], stride: 1, pad: 'same' },
    { x: [2, 5, 4, 2], k: [5, 3, 2, 20], stride: 1, pad: 'same' },
    { x: [3, 6, 7, 4], k: [2, 2, 4, 8], stride: 1, pad: 'valid' },
  ];
  for (const c of convCases) {
    it(`Conv2D gradients (x ${JSON.stringify(c.x)}, filter ${JSON.stringify(c.k)}, stride ${c.stride}, pad ${c.pad}) match cpu`, async () => {
      const x = values(c.x.reduce((p, q) => p * q));
      const w = values(c.k.reduce((p, q) => p * q));
      let weights: Float32Array | undefined;
      const f = () => {
        const xt = tf.tensor4d(x, c.x);
        const wt = tf.tensor4d(w, c.k);
        const y = tf.conv2d(xt, wt, c.stride, c.pad);
        weights ??= values(y.size);
        const r = tf.tensor(weights, y.shape);
        const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)),
        )([xt, wt]);
        tf.dispose([xt, wt, y, r]);
        return read(grads);
      };
      const before = await on('wasm', () => tf.memory().numTensors);
      const [dxWasm, dwWasm] = await on('wasm', f);
      expect(tf.memory().numTensors).toBe(before);
      const [dxCpu, dwCpu] = await on('cpu', f);
      expect(relativeError(dxWasm!, dxCpu!)).toBeLessThan(1e-4);
      expect(relativeError(dwWasm!, dwCpu!)).toBeLessThan(1e-4);
    });
  }

  it('a dy whose shape is not the convolution output gets a clear error, not a read out of bounds', async () => {
    await useBackend('wasm');
    const x = tf.zeros([2, 6, 5, 4]);
    const dy = tf.zeros([2, 6, 4, 8]); // one column short of the 'same' convolution's output
    expect(() =>
      tf
        .engine()
        .runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', filterShape: [3, 3, 4, 8] }),
    ).toThrow(/dy has shape \[2,6,4,8\].*gives \[2,6,5,8\]/);
    tf.dispose([x, dy]);
  });

  it('the stock wasm backend cannot train a conv (Conv2DBackpropFilter missing); with the kernels it can', async () => {
    await useBackend('wasm');
    const x = tf.randomNormal([1, 4, 4, 2]) as tf.Tensor4D;
    const w = tf.variable(tf.randomNormal([3, 3, 2, 2]));
    const loss = () => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 1, 'same')) as tf.Scalar;
    unregisterWasmTrainingKernels();
    try {
      expect(() => tf.variableGrads(loss)).toThrow(/Conv2DBackpropFilter/);
    } finally {
      registerWasmTrainingKernels();
    }
    const { value, grads } = tf.variableGrads(loss);
    expect(Object.keys(grads)).toEqual([w.name]);
    tf.dispose([x, w, value, ...Object.values(grads)]);
  });

  const sumCases: Array<[number[], number | number[], boolean]> = [
    [[6, 5, 7, 8], [0, 1, 2], false], // a bias gradient: the SIMD per-channel sums
    [[600, 12], 0, true], // several blocks of rows, keepDims
    [[3, 4, 20], [1, 0], false], // axes given out of order
    [[3, 4, 20], [-3, -2], true], // negative axes
    [[4, 5, 6], [0, 1], false], // 6 channels: not a multiple of 4 (stock kernel)
    [[4, 5, 8], [1, 2], false], // trailing axes (stock kernel)
    [[4, 5, 8], [0, 2], false], // not contiguous (stock kernel)
  ];
  for (const [shape, axis, keepDims] of sumCases) {
    it(`Sum ${JSON.stringify(shape)} over ${JSON.stringify(axis)}${keepDims ? ' (keepDims)' : ''} matches cpu`, async () => {
      const x = values(shape.reduce((a, b) => a * b));
      const f = () => {
        const y = tf.tidy(() => tf.sum(tf.tensor(x, shape), axis, keepDims));
        const out = { shape: y.shape, values: Float32Array.from(y.dataSync()) };
        y.dispose();
        return out;
      };
      const before = await on('wasm', () => tf.memory().numTensors);
      const wasm = await on('wasm', f);
      expect(tf.memory().numTensors).toBe(before);
      const cpu = await on('cpu', f);
      expect(wasm.shape).toEqual(cpu.shape);
      expect(relativeError(wasm.values, cpu.values)).toBeLessThan(1e-6);
    });
  }

  const poolCases: Array<[[number, number, number, number], number, 'valid' | 'same']> = [
    [[3, 8, 6, 5], 2, 'valid'], // windows tile the input: the direct kernel
    [[2, 9, 9, 4], 3, 'same'],
    [[2, 7, 6, 3], 2, 'valid'], // 7 rows: the last is in no window (stock kernel)
    [[2, 8, 8, 3], 3, 'same'], // overlapping-free but padded (stock kernel)
  ];
  for (const [shape, pool, pad] of poolCases) {
    it(`AvgPoolGrad of a ${pool}×${pool} pool over ${JSON.stringify(shape)} (${pad}) matches cpu`, async () => {
      const x = values(shape.reduce((a, b) => a * b));
      let r: Float32Array | undefined;
      const f = () =>
        read(
          tf.grad((t: tf.Tensor) => {
            const y = tf.avgPool(t as tf.Tensor4D, pool, pool, pad);
            r ??= values(y.size);
            return tf.sum(tf.mul(y, tf.tensor(r, y.shape)));
          })(tf.tensor4d(x, [...shape])),
        )[0]!;
      const wasm = await on('wasm', f);
      const cpu = await on('cpu', f);
      expect(relativeError(wasm, cpu)).toBeLessThan(1e-6);
    });
  }

  it('Identity and same-dtype Cast share the input data (no copy); the result outlives the input', async () => {
    await useBackend('wasm');
    const before = tf.memory();
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const cloned = tf.clone(x);
    const cast = tf.cast(x, 'float32');
    const asInt = tf.cast(x, 'int32');
    // data buffers of the backend: x's (shared by the clone and the cast) and the int32 copy
    expect(tf.memory().numDataBuffers - before.numDataBuffers).toBe(2);
    x.dispose();
    expect(Array.from(cloned.dataSync())).toEqual([1, 2, 3, 4]);
    expect(Array.from(cast.dataSync())).toEqual([1, 2, 3, 4]);
    expect(asInt.dtype).toBe('int32');
    expect(Array.from(asInt.dataSync())).toEqual([1, 2, 3, 4]);
    tf.dispose([cloned, cast, asInt]);
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
  });

  it("gather's gradient (UnsortedSegmentSum) matches cpu", async () => {
    const table = values(6 * 4);
    const ids = [0, 2, 2, 5, 1, 2];
    const weights = values(ids.length * 4);
    const f = () =>
      read(
        tf.grad((t: tf.Tensor) =>
          tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.tensor2d(weights, [ids.length, 4]))),
        )(tf.tensor2d(table, [6, 4])),
      )[0]!;
    const wasm = await on('wasm', f);
    const cpu = await on('cpu', f);
    expect(relativeError(wasm, cpu)).toBeLessThan(1e-6);
  });

  it('the conv filter gradient also matches central finite differences (float64 reference of the loss)', async () => {
    await useBackend('wasm');
    const xs = [1, 5, 5, 2] as const;
    const ks = [3, 3, 2, 2] as const;
    const x = values(50);
    const w = values(36);
    const r = values(50);
    const grad = tf.tidy(() =>
      tf
        .grad((b: tf.Tensor) =>
          tf.sum(
            tf.mul(
              tf.conv2d(tf.tensor4d(x, [...xs]), b as tf.Tensor4D, 1, 'same'),
              tf.tensor4d(r, [1, 5, 5, 2]),
            ),
          ),
        )(tf.tensor4d(w, [...ks]))
        .dataSync(),
    );
    // Float64 JS convolution loss, 'same' padding 1.
    const loss = (filter: Float64Array) => {
      let s = 0;
      for (let i = 0; i < 5; i++)
        for (let j = 0; j < 5; j++)
          for (let o = 0; o < 2; o++) {
            let y = 0;
            for (let p = 0; p < 3; p++)
              for (let q = 0; q < 3; q++) {
                const a = i + p - 1;
                const b = j + q - 1;
                if (a < 0 || a > 4 || b < 0 || b > 4) continue;
                for (let c = 0; c < 2; c++)
                  y += x[(a * 5 + b) * 2 + c]! * filter[((p * 3 + q) * 2 + c) * 2 + o]!;
              }
            s += y * r[(i * 5 + j) * 2 + o]!;
          }
      return s;
    };
    const h = 1e-3;
    const fd = new Float64Array(36);
    for (let k = 0; k < 36; k++) {
      const plus = Float64Array.from(w);
      const minus = Float64Array.from(w);
      plus[k]! += h;
      minus[k]! -= h;
      fd[k] = (loss(plus) - loss(minus)) / (2 * h);
    }
    expect(relativeError(grad, fd)).toBeLessThan(1e-4);
  });
});
