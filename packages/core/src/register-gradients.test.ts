import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { registerGradients } from './register-gradients';

describe('registerGradients', () => {
  it('makes tf.grad work (idempotent)', async () => {
    await registerGradients();
    await registerGradients();
    expect(tf.getGradient('Sum')).toBeDefined();
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)))(tf.tensor1d([1, 2]));
    expect(Array.from(g.dataSync())).toEqual([2, 4]);
  });
});
