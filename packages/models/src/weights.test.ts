import { InvalidArgumentError } from '@piflow/core';
import { countLeaks, useBackend } from '@piflow/core/testing';
import type * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMLPBackbone, createUNetBackbone } from './backbone';
import { createFlowModel } from './flow-model';
import { getWeights, setWeights } from './weights';

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
});
