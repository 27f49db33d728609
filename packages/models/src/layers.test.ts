import { createRandom } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  conv3x3Concat,
  createConv3x3,
  createDense,
  denseConcat,
  poolPositions,
  sinusoidalEmbedding,
  upsampleNearest2x,
} from './layers';

// References are the plain tfjs formulations (concat first); tolerance 1e-5 absolute (float32 sums of ≤ 100
// terms of size ~1).
describe('layers', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });
  const random = createRandom(3);

  it('poolPositions averages every position per channel (rank 2 to 5), its gradient spreads dy evenly', () => {
    for (const shape of [
      [3, 4],
      [3, 7, 4],
      [3, 5, 6, 4],
      [2, 3, 2, 5, 4],
    ]) {
      const x = random.normalTensor(shape);
      const [B, C] = [shape[0]!, shape[shape.length - 1]!];
      const P = x.size / (B * C);
      const xv = x.dataSync();
      // float64 JS reference
      const reference = new Float64Array(B * C);
      for (let i = 0; i < x.size; i++) {
        const b = Math.floor(i / (P * C));
        reference[b * C + (i % C)]! += xv[i]! / P;
      }
      const y = poolPositions(x);
      expect(y.shape).toEqual([B, C]);
      expect(maxAbsDifference(y.dataSync(), reference)).toBeLessThan(1e-6);
      const r = random.normalTensor([B, C]);
      const rv = r.dataSync();
      const g = tf
        .grad((t: tf.Tensor) => tf.sum(tf.mul(poolPositions(t), r)))(x)
        .dataSync();
      const expected = Array.from(g, (_, i) => rv[Math.floor(i / (P * C)) * C + (i % C)]! / P);
      expect(maxAbsDifference(g, expected)).toBeLessThan(1e-6);
      tf.dispose([x, y, r]);
    }
  });

  it('upsampleNearest2x repeats each pixel 2×2 and its gradient is the 2×2 block sum', () => {
    const x = random.normalTensor([2, 3, 4, 5]) as tf.Tensor4D;
    const r = random.normalTensor([2, 6, 8, 5]);
    const y = upsampleNearest2x(x);
    const yv = y.dataSync();
    const xv = x.dataSync();
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 8; j++)
        for (let c = 0; c < 5; c++) {
          expect(yv[((1 * 6 + i) * 8 + j) * 5 + c]).toBe(xv[((1 * 3 + (i >> 1)) * 4 + (j >> 1)) * 5 + c]);
        }
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(t as tf.Tensor4D), r)))(x);
    // Float64 JS reference: dx[b, i, j, c] = Σ_{a, e ∈ {0, 1}} r[b, 2i + a, 2j + e, c].
    const rv = r.dataSync();
    const reference = new Float64Array(2 * 3 * 4 * 5);
    for (let n = 0; n < 2; n++)
      for (let i = 0; i < 6; i++)
        for (let j = 0; j < 8; j++)
          for (let c = 0; c < 5; c++)
            reference[((n * 3 + (i >> 1)) * 4 + (j >> 1)) * 5 + c]! += rv[((n * 6 + i) * 8 + j) * 5 + c]!;
    expect(maxAbsDifference(g.dataSync(), reference)).toBeLessThan(1e-5);
    tf.dispose([x, r, y, g]);
  });

  it('conv3x3Concat and denseConcat equal the layer applied to the concatenation, gradients included', () => {
    const conv = createConv3x3('c', 7, 4, random);
    const dense = createDense('d', 7, 3, random);
    tf.tidy(() => conv.bias.variable.assign(random.normalTensor([4])));
    const a = random.normalTensor([2, 4, 4, 3]);
    const b = random.normalTensor([2, 4, 4, 4]);
    const split = (p: tf.Tensor, q: tf.Tensor) =>
      tf.add(
        tf.sum(tf.square(conv3x3Concat([p, q], conv, tf.sigmoid))),
        tf.sum(tf.sin(denseConcat([p, q], dense))),
      );
    const joined = (p: tf.Tensor, q: tf.Tensor) => {
      const cat = tf.concat([p, q], 3);
      const y = tf.add(
        tf.conv2d(tf.sigmoid(cat) as tf.Tensor4D, conv.filter.variable as tf.Tensor4D, 1, 'same'),
        conv.bias.variable,
      );
      const z = tf.add(tf.matMul(tf.reshape(cat, [-1, 7]), dense.kernel.variable), dense.bias.variable);
      return tf.add(tf.sum(tf.square(y)), tf.sum(tf.sin(z)));
    };
    const vars = [conv.filter.variable, conv.bias.variable, dense.kernel.variable, dense.bias.variable];
    const s = tf.variableGrads(() => split(a, b) as tf.Scalar, vars);
    const j = tf.variableGrads(() => joined(a, b) as tf.Scalar, vars);
    expect(Math.abs(s.value.dataSync()[0]! - j.value.dataSync()[0]!)).toBeLessThan(1e-3);
    for (const v of vars) {
      expect(maxAbsDifference(s.grads[v.name]!.dataSync(), j.grads[v.name]!.dataSync())).toBeLessThan(1e-4);
    }
    const ga = tf.grads((p: tf.Tensor, q: tf.Tensor) => split(p, q))([a, b]);
    const gb = tf.grads((p: tf.Tensor, q: tf.Tensor) => joined(p, q))([a, b]);
    expect(maxAbsDifference(ga[0]!.dataSync(), gb[0]!.dataSync())).toBeLessThan(1e-4);
    expect(maxAbsDifference(ga[1]!.dataSync(), gb[1]!.dataSync())).toBeLessThan(1e-4);
    tf.dispose([
      a,
      b,
      s.value,
      j.value,
      ...Object.values(s.grads),
      ...Object.values(j.grads),
      ...ga,
      ...gb,
      ...vars,
    ]);
  });

  it('sinusoidal embedding of t = 1000·σ: [cos(t·f_i), sin(t·f_i)], f_i = 10000^(−i/half)', () => {
    const e = sinusoidalEmbedding(tf.tensor1d([0.25]), 8).dataSync();
    for (let i = 0; i < 4; i++) {
      const f = Math.exp((-Math.log(10000) * i) / 4);
      expect(e[i]).toBeCloseTo(Math.cos(250 * f), 4);
      expect(e[4 + i]).toBeCloseTo(Math.sin(250 * f), 4);
    }
  });
});
