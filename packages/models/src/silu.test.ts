import { createRandom } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { composedSilu, silu } from './silu';

// Inputs over the range networks see and beyond (the clamp at |x| = 88), an odd size (the SIMD passes' tail).
const random = createRandom(5);
const n = 4 * 1000 + 3;
const x = Float32Array.from({ length: n }, (_, i) =>
  i < 12 ? [-200, -88.5, -88, -30, -1e-3, 0, 1e-3, 0.5, 30, 88, 88.5, 200][i]! : 6 * random.normal(),
);
const dy = Float32Array.from({ length: n }, () => random.normal());

/** Float64 references: y = x·σ(x), dx = dy·σ·(1 + x(1 − σ)). */
const sig = (v: number) => 1 / (1 + Math.exp(-v));
const yRef = Array.from(x, (v) => v * sig(v));
const dxRef = Array.from(x, (v, i) => dy[i]! * sig(v) * (1 + v * (1 - sig(v))));
// dx's own scale: |dy|·σ·(1 + |x|), so that neither the cancellation in 1 + x(1 − σ) near x ≈ −1.28 (where
// dx crosses 0) nor float32's 1 − σ where σ ≈ 1 (the composed ops' autodiff computes it the same way) count
const dxScale = Array.from(x, (v, i) => Math.abs(dy[i]! * sig(v)) * (1 + Math.abs(v)));

/** Largest error relative to `scale` (default: the reference's magnitude) plus 1e-30. */
function worst(got: ArrayLike<number>, want: number[], scale = want): number {
  let w = 0;
  for (let i = 0; i < want.length; i++) {
    w = Math.max(w, Math.abs(got[i]! - want[i]!) / (Math.abs(scale[i]!) + 1e-30));
  }
  return w;
}

describe('fused SiLU', () => {
  for (const backend of ['cpu', 'wasm']) {
    it(`${backend}: forward and gradient match float64 (error ≤ 1e-6 of their scale: tfjs's float32 sigmoid) and leak nothing`, async () => {
      await useBackend(backend);
      const before = tf.memory().numTensors;
      const xt = tf.tensor1d(x);
      const dyt = tf.tensor1d(dy);
      const y = silu(xt);
      const [dx] = tf.grads((a: tf.Tensor) => silu(a))([xt], dyt);
      expect(worst(y.dataSync(), yRef)).toBeLessThan(1e-6);
      expect(worst(dx!.dataSync(), dxRef, dxScale)).toBeLessThan(1e-6);
      tf.dispose([xt, dyt, y, dx!]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('agrees with the composed ops (sigmoid · x and their autodiff) on a 4-D activation', async () => {
    await useBackend('wasm');
    const shape = [2, 5, 7, 12];
    const a = tf.tensor(x.slice(0, 840), shape);
    const g = tf.tensor(dy.slice(0, 840), shape);
    const fused = tf.grads((t: tf.Tensor) => silu(t))([a], g)[0]!;
    const composed = tf.grads((t: tf.Tensor) => composedSilu(t))([a], g)[0]!;
    expect(silu(a).shape).toEqual(shape);
    const diff = tf.max(tf.abs(tf.sub(fused, composed))).dataSync()[0]!;
    expect(diff).toBeLessThan(1e-5 * tf.max(tf.abs(composed)).dataSync()[0]!);
    tf.dispose([a, g, fused, composed]);
  });
});
