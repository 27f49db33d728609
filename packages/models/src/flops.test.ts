import { registerGradients } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createUNetBackbone } from './backbone';
import { countFlops, kernelFlops } from './flops';

describe('FLOP counts from kernel shapes', () => {
  beforeAll(async () => {
    await useBackend('cpu');
    await registerGradients();
  });

  it('count a matMul as 2·M·K·N whatever the transposes, and a conv as 2·|y|·kh·kw·Cin', async () => {
    const a = tf.ones([5, 7]);
    const b = tf.ones([7, 3]);
    const bt = tf.ones([3, 7]);
    expect((await countFlops(() => tf.matMul(a, b))).flops).toBe(2 * 5 * 7 * 3);
    expect((await countFlops(() => tf.matMul(a, bt, false, true))).flops).toBe(2 * 5 * 7 * 3);
    const at = tf.ones([7, 5]);
    expect((await countFlops(() => tf.matMul(at, b, true, false))).flops).toBe(2 * 5 * 7 * 3);
    // conv 3×3, 'same', stride 1: [2, 6, 6, 4] → [2, 6, 6, 8]: every output value is 3·3·4 multiply-adds
    const x = tf.ones([2, 6, 6, 4]);
    const w = tf.ones([3, 3, 4, 8]);
    const conv = await countFlops(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'));
    expect(conv.flops).toBe(2 * (2 * 6 * 6 * 8) * 3 * 3 * 4);
    // its gradients: dx and dW cost what the forward costs
    const grads = await countFlops(() =>
      tf.grads((xx, ww) => tf.sum(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'same')))([x, w]),
    );
    expect(grads.byKernel.Conv2D).toBe(conv.flops);
    expect(grads.byKernel.Conv2DBackpropInput).toBe(conv.flops);
    expect(grads.byKernel.Conv2DBackpropFilter).toBe(conv.flops);
    expect(grads.uncounted.Sum).toBeGreaterThan(0);
    expect(kernelFlops('Add', [[3]], [[3]])).toBeUndefined();
    tf.dispose([a, b, bt, at, x, w]);
  });

  it('count a U-Net forward from its layers, and leave no tensors', async () => {
    const backbone = createUNetBackbone({ channels: [4, 8], inChannels: 1, numClasses: 3, seed: 1 });
    const x = tf.ones([2, 8, 8, 1]);
    const sigma = tf.fill([2], 0.5) as tf.Tensor1D;
    const labels = tf.tensor1d([0, 1], 'int32');
    const before = tf.memory().numTensors;
    const { flops, byKernel } = await countFlops(() => {
      const { features, embedding } = backbone.apply(x, sigma, { labels });
      return [features, embedding];
    });
    expect(tf.memory().numTensors).toBe(before);
    // Every conv of the network is 3×3 or 1×1 over 8×8 or 4×4 maps of ≤ 8 + 8 channels, batch 2: a positive
    // count below the bound 2·2·64·9·16·8 per conv times the number of convs.
    expect(byKernel.Conv2D ?? byKernel.FusedConv2D).toBeGreaterThan(0);
    expect(flops).toBeGreaterThan(2 * 2 * 64 * 9 * 1 * 4); // at least the first conv
    tf.dispose([x, sigma, labels]);
    backbone.dispose();
    await expect(countFlops(3 as never)).rejects.toThrow(/`fn`/);
  });
});
