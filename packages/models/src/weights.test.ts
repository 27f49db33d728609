import { InvalidArgumentError } from '@piflow/core';
import { countLeaks, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMLPBackbone, createUNetBackbone } from './backbone';
import { createFlowModel } from './flow-model';
import { createExponentialMovingAverage, getWeights, setWeights } from './weights';

describe('weights and EMA', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('getWeights/setWeights round-trip a model exactly, with copies and no leaks', () => {
    const a = createFlowModel(
      createUNetBackbone({ channels: [2, 4], inChannels: 1, numClasses: 2, seed: 1 }),
    );
    const b = createFlowModel(
      createUNetBackbone({ channels: [2, 4], inChannels: 1, numClasses: 2, seed: 2 }),
    );
    expect(a.variableNames).toEqual(b.variableNames);
    const { result: weights, leaked } = countLeaks(() => getWeights(a.variables));
    expect(leaked).toBe(0);
    expect(weights.length).toBe(a.variables.length);
    const { leaked: leakedSet } = countLeaks(() => setWeights(b.variables, weights));
    expect(leakedSet).toBe(0);
    const again = getWeights(b.variables);
    again.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(weights[i]!)));
    // The arrays are copies: changing them does not change the model.
    weights[0]![0] = 123;
    expect(a.variables[0]!.dataSync()[0]).not.toBe(123);
    a.dispose();
    b.dispose();
  });

  it('setWeights checks count and sizes before assigning anything', () => {
    const model = createFlowModel(createMLPBackbone({ inputDim: 2, width: 4, depth: 1 }));
    const weights = getWeights(model.variables);
    expect(() => setWeights(model.variables, weights.slice(1))).toThrow(InvalidArgumentError);
    const bad = weights.map((w) => w.map(() => 7));
    bad[3] = new Float32Array(1);
    expect(() => setWeights(model.variables, bad)).toThrow(/`arrays\[3\]`.*of shape/);
    // Nothing was assigned (arrays before index 3 were fine, but the check runs first).
    expect(model.variables[0]!.dataSync()[0]).toBe(weights[0]![0]);
    expect(() => getWeights([{} as tf.Variable])).toThrow(/`variables`/);
    model.dispose();
  });

  it('the EMA follows shadow = d·shadow + (1 − d)·v and reports it bias-corrected (no share of the initial values)', () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    const ema = createExponentialMovingAverage([v], 0.9);
    v.assign(tf.tensor1d([11, 12]));
    const { leaked } = countLeaks(() => ema.update());
    expect(leaked).toBe(0);
    expect(Array.from(ema.shadows[0]!.dataSync())).toEqual([expect.closeTo(2, 5), expect.closeTo(3, 5)]);
    // (shadow − 0.9·θ₀) / (1 − 0.9): after one update the average is the value itself.
    expect(Array.from(ema.getWeights()[0]!)).toEqual([expect.closeTo(11, 4), expect.closeTo(12, 4)]);
    v.assign(tf.tensor1d([21, 22]));
    ema.update();
    // weights 0.1·0.9 and 0.1 on 11 and 21, normalised by 1 − 0.81: (0.99 + 2.1) / 0.19
    const expected = (a: number, b: number) => (0.09 * a + 0.1 * b) / 0.19;
    expect(Array.from(ema.getWeights()[0]!)).toEqual([
      expect.closeTo(expected(11, 21), 4),
      expect.closeTo(expected(12, 22), 4),
    ]);
    const { leaked: copyLeaks } = countLeaks(() => ema.copyTo());
    expect(copyLeaks).toBe(0);
    expect(Array.from(v.dataSync())).toEqual([
      expect.closeTo(expected(11, 21), 4),
      expect.closeTo(expected(12, 22), 4),
    ]);
    // Restored averages continue as they are (no correction), e.g. from a checkpoint.
    ema.setWeights([[5, 6]]);
    expect(Array.from(ema.getWeights()[0]!)).toEqual([5, 6]);
    expect(() => createExponentialMovingAverage([v], 1.5)).toThrow(/`decay`/);
    ema.dispose();
    v.dispose();
  });
});
