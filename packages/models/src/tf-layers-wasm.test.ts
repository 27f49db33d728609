import { createRandom } from '@piflow/core';
import { relativeError, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels } from './wasm-training-kernels';

// tf.layers callers get the fixes too: Dense uses the fused matMul (whose gradient calls matMul with
// transpose flags), Conv2D the fused conv (whose gradient needs Conv2DBackpropFilter/Input), Embedding
// gather (whose gradient needs UnsortedSegmentSum).

const random = createRandom(5);

function buildModel(weights?: tf.Tensor[]): tfl.LayersModel {
  const input = tfl.input({ shape: [6, 6, 2] });
  const conv = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' })
    .apply(input);
  const flat = tfl.layers.flatten().apply(conv);
  const output = tfl.layers.dense({ units: 3 }).apply(flat) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: output });
  if (weights) model.setWeights(weights);
  return model;
}

describe('tf.layers training on wasm', () => {
  const x = random.fillNormal(new Float32Array(5 * 6 * 6 * 2));
  const y = random.fillNormal(new Float32Array(5 * 3));

  function gradients(model: tfl.LayersModel): Float32Array[] {
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(
          () =>
            tf.mean(
              tf.square(
                tf.sub(model.apply(tf.tensor4d(x, [5, 6, 6, 2])) as tf.Tensor, tf.tensor2d(y, [5, 3])),
              ),
            ) as tf.Scalar,
        ),
      vars,
    );
    const out = vars.map((v) => Float32Array.from(grads[v.name]!.dataSync()));
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  }

  it('a Dense + Conv2D model has the cpu gradients on wasm, and model.fit trains', async () => {
    await useBackend('cpu');
    const reference = buildModel();
    const initial = reference
      .getWeights()
      .map((w) => ({ values: Float32Array.from(w.dataSync()), shape: w.shape }));
    const cpuGrads = gradients(reference);
    reference.dispose();

    await useBackend('wasm');
    const weights = () => initial.map((w) => tf.tensor(w.values, w.shape));
    const stockModel = buildModel(weights());
    unregisterWasmTrainingKernels();
    expect(() => gradients(stockModel)).toThrow(/Conv2DBackpropFilter/);
    stockModel.dispose();

    registerWasmTrainingKernels();
    const model = buildModel(weights());
    const wasmGrads = gradients(model);
    expect(wasmGrads.length).toBe(cpuGrads.length);
    wasmGrads.forEach((g, i) => expect(relativeError(g, cpuGrads[i]!)).toBeLessThan(1e-4));

    model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    const xs = tf.tensor4d(x, [5, 6, 6, 2]);
    const ys = tf.tensor2d(y, [5, 3]);
    const history = await model.fit(xs, ys, { epochs: 8, batchSize: 5, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]!);
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('an Embedding layer trains on wasm (gather gradient)', async () => {
    await useBackend('wasm');
    registerWasmTrainingKernels();
    const model = tfl.sequential({
      layers: [
        tfl.layers.embedding({ inputDim: 10, outputDim: 4, inputLength: 3 }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 1 }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const xs = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3]);
    const ys = tf.tensor2d([1, -1, 0.5], [3, 1]);
    const history = await model.fit(xs, ys, { epochs: 5, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses[4]!).toBeLessThan(losses[0]!);
    tf.dispose([xs, ys]);
    model.dispose();
  });
});
