import { useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createUNetBackbone } from './backbone';

describe('U-Net backbone memory', () => {
  beforeAll(() => useBackend('cpu'));

  it('holds one block’s activations at a time in a forward, and still trains (gradients match)', async () => {
    const backbone = createUNetBackbone({ channels: [8, 16, 32], inChannels: 1, numClasses: 3, seed: 2 });
    const B = 4;
    const x = tf.randomNormal([B, 16, 16, 1], 0, 1, 'float32', 3);
    const sigma = tf.fill([B], 0.5) as tf.Tensor1D;
    const labels = tf.tensor1d([0, 1, 2, 3], 'int32');
    const forward = () => {
      const { features, embedding } = backbone.apply(x, sigma, { labels });
      embedding.dispose();
      return features;
    };
    // The per-block scopes must not release what the backward pass needs: gradients of a scalar of the
    // features agree with central finite differences along a random direction of the first conv's filter.
    const filter = backbone.variables[0]!;
    const direction = tf.randomNormal(filter.shape, 0, 1, 'float32', 5);
    const loss = () => tf.tidy(() => tf.sum(tf.square(forward())) as tf.Scalar);
    const { grads } = tf.variableGrads(loss, [filter]);
    const analytic = tf.sum(tf.mul(grads[filter.name]!, direction)).dataSync()[0]!;
    const h = 1e-3;
    const original = filter.clone();
    filter.assign(tf.add(original, tf.mul(direction, h)));
    const plus = loss().dataSync()[0]!;
    filter.assign(tf.sub(original, tf.mul(direction, h)));
    const minus = loss().dataSync()[0]!;
    filter.assign(original);
    const numeric = (plus - minus) / (2 * h);
    expect(Math.abs(analytic - numeric)).toBeLessThan(2e-2 * Math.abs(numeric) + 1e-3);
    const start = tf.memory().numBytes;
    const info = await tf.profile(() => forward());
    (info.result as tf.Tensor).dispose();
    // Every kernel's output, summed: what a forward that released nothing until its end would hold at its peak.
    const allOutputs = info.kernels.reduce(
      (sum, k) =>
        sum + k.outputShapes.reduce((s, shape) => s + 4 * (shape ?? []).reduce((a, d) => a * d, 1), 0),
      0,
    );
    expect(info.peakBytes - start).toBeLessThan(0.35 * allOutputs);
    tf.dispose([x, sigma, labels, direction, original, ...Object.values(grads)]);
    backbone.dispose();
  });
});
