import { createRandom } from '@piflow/core';
import { maxAbsDifference, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { composedGroupNorm, groupCount, groupNormOp } from './group-norm';

/** Float64 JS GroupNorm of x [N, P, C] (flattened) — the independent reference of the forward pass. */
function reference(
  x: Float32Array,
  scale: Float32Array,
  shift: Float32Array,
  N: number,
  C: number,
  G: number,
) {
  const P = x.length / (N * C);
  const s = C / G;
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < G; g++) {
      let sum = 0;
      for (let p = 0; p < P; p++) for (let c = g * s; c < (g + 1) * s; c++) sum += x[(n * P + p) * C + c]!;
      const mean = sum / (P * s);
      let sq = 0;
      for (let p = 0; p < P; p++)
        for (let c = g * s; c < (g + 1) * s; c++) sq += (x[(n * P + p) * C + c]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(sq / (P * s) + 1e-5);
      for (let p = 0; p < P; p++)
        for (let c = g * s; c < (g + 1) * s; c++) {
          const i = (n * P + p) * C + c;
          y[i] = (x[i]! - mean) * rstd * scale[c]! + shift[c]!;
        }
    }
  return y;
}

describe.each(testBackends())('GroupNorm on %s', (backend) => {
  const random = createRandom(5);

  it('forward matches a float64 reference and the composed tfjs ops (1e-5)', async () => {
    await useBackend(backend);
    const [N, H, W, C, G] = [3, 5, 4, 12, 4];
    const x = tf.add(tf.mul(random.normalTensor([N, H, W, C]), 2), 0.7);
    const scale = random.normalTensor([C]);
    const shift = random.normalTensor([C]);
    const before = tf.memory().numTensors;
    const y = groupNormOp(x, scale, shift, G);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(y.shape).toEqual([N, H, W, C]);
    const expected = reference(
      x.dataSync() as Float32Array,
      scale.dataSync() as Float32Array,
      shift.dataSync() as Float32Array,
      N,
      C,
      G,
    );
    const got = y.dataSync();
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
    expect(worst).toBeLessThan(1e-5);
    const composed = composedGroupNorm(x, scale, shift, G);
    expect(maxAbsDifference(y.dataSync(), composed.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, scale, shift, y, composed]);
  });

  it('gradients for x, scale and shift equal the autodiff of the composed ops (1e-4) and leak nothing', async () => {
    await useBackend(backend);
    for (const [shape, G] of [
      [[2, 6, 6, 8], 8],
      [[3, 7, 16], 4],
      [[2, 4, 4, 6], 1],
      // More positions than one block of the wasm SIMD sums (64), not a multiple of it.
      [[2, 13, 11, 8], 2],
    ] as Array<[number[], number]>) {
      const C = shape[shape.length - 1]!;
      const x = random.normalTensor(shape);
      const scale = random.normalTensor([C]);
      const shift = random.normalTensor([C]);
      const r = random.normalTensor(shape);
      const loss = (f: typeof groupNormOp) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(tf.square(f(a, b, c, G)), r));
      const before = tf.memory().numTensors;
      const fusedGrads = tf.grads(loss(groupNormOp))([x, scale, shift]);
      expect(tf.memory().numTensors).toBe(before + 3);
      const composedGrads = tf.grads(loss(composedGroupNorm))([x, scale, shift]);
      for (let i = 0; i < 3; i++) {
        expect(fusedGrads[i]!.shape).toEqual(composedGrads[i]!.shape);
        expect(maxAbsDifference(fusedGrads[i]!.dataSync(), composedGrads[i]!.dataSync())).toBeLessThan(1e-4);
      }
      tf.dispose([x, scale, shift, r, ...fusedGrads, ...composedGrads]);
    }
  });

  it.each([
    [6, 3],
    [8, 4],
  ])(
    'gradient for x matches central finite differences of a float64 loss (C = %i, %i groups)',
    async (C, G) => {
      await useBackend(backend);
      const [N, P] = [2, 5];
      const xv = random.fillNormal(new Float32Array(N * P * C));
      const sv = random.fillNormal(new Float32Array(C));
      const bv = random.fillNormal(new Float32Array(C));
      const rv = random.fillNormal(new Float32Array(N * P * C));
      const f64 = (values: Float32Array) => {
        const y = reference(values, sv, bv, N, C, G);
        let total = 0;
        for (let i = 0; i < y.length; i++) total += y[i]! * y[i]! * rv[i]!;
        return total;
      };
      const g = tf.tidy(() =>
        tf.grad((t: tf.Tensor) =>
          tf.sum(
            tf.mul(tf.square(groupNormOp(t, tf.tensor1d(sv), tf.tensor1d(bv), G)), tf.tensor(rv, [N, P, C])),
          ),
        )(tf.tensor(xv, [N, P, C])),
      );
      const gv = g.dataSync();
      const h = 1e-3;
      for (const i of [0, 7, 31, N * P * C - 1]) {
        const plus = Float32Array.from(xv);
        const minus = Float32Array.from(xv);
        plus[i]! += h;
        minus[i]! -= h;
        // Float32 perturbations of size 1e-3 of float64 sums: agreement to ~1e-2 relative.
        const fd = (f64(plus) - f64(minus)) / (plus[i]! - minus[i]!);
        expect(Math.abs(gv[i]! - fd)).toBeLessThan(1e-2 * Math.max(1, Math.abs(fd)));
      }
      g.dispose();
    },
  );
});

describe('groupCount', () => {
  it('is the largest divisor of the channels not above the requested groups', () => {
    expect(groupCount(32, 8)).toBe(8);
    expect(groupCount(12, 8)).toBe(6);
    expect(groupCount(7, 8)).toBe(7);
    expect(groupCount(4, 8)).toBe(4);
    expect(groupCount(9, 2)).toBe(1);
  });
});
