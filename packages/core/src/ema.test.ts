import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { EMA } from './ema';
import { countLeaks, useBackend } from './testing';

describe('EMA', () => {
  beforeAll(() => useBackend('cpu'));

  it('Karras EMA uses β_t = (1 − 1/t)^(γ+1) and swaps weights in and out', async () => {
    const w = tf.variable(tf.tensor1d([0]));
    const ema = new EMA([w], { gamma: 1 });
    expect(ema.decayAt(0)).toBe(0);
    expect(ema.decayAt(1)).toBeCloseTo(0.25, 12);
    w.assign(tf.tensor1d([1]));
    ema.update(0); // β = 0 → shadow = 1
    w.assign(tf.tensor1d([3]));
    ema.update(1); // β = 0.25 → 0.25·1 + 0.75·3 = 2.5
    const inside = await ema.swap(() => w.dataSync()[0]);
    expect(inside).toBeCloseTo(2.5, 6);
    expect(w.dataSync()[0]).toBe(3);
    ema.dispose();
    w.dispose();
  });

  it('a bias-corrected constant decay reports the average without any share of the start', async () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    const ema = new EMA([v], { decay: 0.9, biasCorrection: true });
    // before any update the average is the variables themselves
    expect(Array.from((await ema.getWeights())[0]!)).toEqual([1, 2]);
    v.assign(tf.tensor1d([11, 12]));
    const { leaked } = countLeaks(() => ema.update());
    expect(leaked).toBe(0);
    // after one update the average is the value itself
    expect(Array.from((await ema.getWeights())[0]!)).toEqual([expect.closeTo(11, 4), expect.closeTo(12, 4)]);
    v.assign(tf.tensor1d([21, 22]));
    ema.update();
    // weights 0.1·0.9 and 0.1 on 11 and 21, normalised by 1 − 0.81
    const expected = (a: number, b: number) => (0.09 * a + 0.1 * b) / 0.19;
    const { leaked: copyLeaks } = countLeaks(() => ema.copyTo());
    expect(copyLeaks).toBe(0);
    expect(Array.from(v.dataSync())).toEqual([
      expect.closeTo(expected(11, 21), 4),
      expect.closeTo(expected(12, 22), 4),
    ]);
    expect(ema.updates).toBe(2);
    // without correction the start keeps its share: 0.81·1 + 0.09·11 + 0.1·21
    const plain = new EMA([v], { decay: 0.9 });
    v.assign(tf.tensor1d([11, 12]));
    plain.update();
    v.assign(tf.tensor1d([21, 22]));
    plain.update();
    const start = expected(11, 21);
    expect((await plain.getWeights())[0]![0]).toBeCloseTo(0.81 * start + 0.09 * 11 + 0.1 * 21, 4);
    tf.dispose(v);
    ema.dispose();
    plain.dispose();
  });

  it('continues exactly from its state (a resumed run equals an uninterrupted one)', async () => {
    const values = [0.3, -1.2, 4, 2.5, -0.7, 1.1];
    const run = async (split: number | undefined) => {
      const v = tf.variable(tf.tensor1d([0.5]));
      let ema = new EMA([v], { decay: 0.99, biasCorrection: true });
      for (let i = 0; i < values.length; i++) {
        if (i === split) {
          const state = await ema.getStateAsync();
          ema.dispose();
          ema = new EMA([v], { decay: 0.99, biasCorrection: true });
          ema.setState(state);
        }
        v.assign(tf.tensor1d([values[i]!]));
        ema.update();
      }
      const out = (await ema.getWeights())[0]![0]!;
      ema.dispose();
      v.dispose();
      return out;
    };
    const straight = await run(undefined);
    for (const split of [1, 3, 5]) expect(await run(split)).toBe(straight);
  });

  it('refuses bad options and states, naming the argument', () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    expect(() => new EMA([v], { decay: 1.5 })).toThrow(/`options.decay`/);
    expect(() => new EMA([v], { gamma: -1 })).toThrow(/`options.gamma`/);
    expect(() => new EMA([{} as tf.Variable])).toThrow(/`variables`/);
    const ema = new EMA([v], { decay: 0.5 });
    expect(() => ema.setState({ shadows: [Float32Array.of(1)], updates: 0, remaining: 1 })).toThrow(
      /`state.shadows\[0\]`/,
    );
    expect(() => ema.setState({ shadows: [], updates: 0, remaining: 1 })).toThrow(/`state.shadows`/);
    expect(() => ema.setState({ shadows: [Float32Array.of(1, 2)], updates: 0, remaining: 2 })).toThrow(
      /`state.remaining`/,
    );
    const w = tf.variable(tf.tensor1d([1, 2, 3]));
    expect(() => ema.copyTo([w])).toThrow(/`target\[0\]`/);
    ema.dispose();
    tf.dispose([v, w]);
  });
});
