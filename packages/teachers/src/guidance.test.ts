import {
  type AnalyticGMFlow,
  type Condition,
  createAnalyticGMFlow,
  createRandom,
  InvalidArgumentError,
  type Sigma,
  type Teacher,
} from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { dropCondition, withClassifierFreeGuidance } from './guidance';
import { assertTeacherCall } from './teacher-inputs';
import { describeTeacherContract } from './testing';

const means = [
  [-1, 0.5],
  [1.5, -0.5],
  [0, 2],
];
const std = 0.35;
const K = means.length;
// conditional flows: label k → component k alone; the null label (index K) → the whole mixture
const flows: AnalyticGMFlow[] = [
  ...means.map((m) => createAnalyticGMFlow({ means: [m], std })),
  createAnalyticGMFlow({ means, std }),
];

/** A class-conditional exact flow: `labels` one-hot [B, K + 1], the last column being the null label. */
function conditionalTeacher(calls: number[]): Teacher {
  const metadata = { layout: 'vector' as const, guidance: 'none' as const, conditionNames: ['labels'] };
  return {
    metadata,
    async velocity(x: tf.Tensor, sigma: Sigma, condition?: Condition) {
      assertTeacherCall(x, sigma, condition, metadata);
      calls.push(x.shape[0]!);
      return tf.tidy(() => {
        const labels = condition!.labels!;
        let u = tf.zerosLike(x);
        flows.forEach((flow, k) => {
          const weight = tf.slice(labels, [0, k], [-1, 1]);
          u = tf.add(u, tf.mul(weight, flow.velocity(x, sigma)));
        });
        return u;
      });
    },
  };
}

function oneHot(labels: number[]): tf.Tensor {
  return tf.tidy(() => tf.cast(tf.oneHot(labels, K + 1), 'float32'));
}

/** float64 reference of CFG: u_c + (g − 1)(u_c − u_u) inside the interval. */
function cfgReference(
  x: Float32Array,
  sigma: number[],
  labels: number[],
  scale: number,
  interval: [number, number],
): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < sigma.length; b++) {
    const row = x.subarray(2 * b, 2 * b + 2);
    const uc = flows[labels[b]!]!.velocityFloat64(row, sigma[b]!);
    const uu = flows[K]!.velocityFloat64(row, sigma[b]!);
    const g = sigma[b]! >= interval[0] && sigma[b]! <= interval[1] ? scale : 1;
    for (let c = 0; c < 2; c++) out[2 * b + c] = uc[c]! + (g - 1) * (uc[c]! - uu[c]!);
  }
  return out;
}

const labelsOf = (condition: Condition | undefined) =>
  Array.from(tf.tidy(() => tf.argMax(condition!.labels!, 1)).dataSync());

describeTeacherContract('classifier-free guidance wrapper (batched, null label)', {
  metadata: {
    layout: 'vector',
    guidance: 'cfg',
    conditionNames: ['labels'],
    description: 'teacher with CFG 3 on σ ∈ [0.2, 0.8]',
  },
  create: () =>
    withClassifierFreeGuidance(conditionalTeacher([]), {
      guidanceScale: 3,
      interval: [0.2, 0.8],
      unconditional: { labels: oneHot([K]) },
    }),
  makeInputs: (batch, random) => ({
    x: random.normalTensor([batch, 2]),
    sigma: Array.from({ length: batch }, () => 0.05 + 0.9 * random.uniform()),
    condition: { labels: oneHot(Array.from({ length: batch }, () => random.integer(K))) },
  }),
  reference: ({ x, sigma, condition }) =>
    cfgReference(x.dataSync() as Float32Array, sigma, labelsOf(condition), 3, [0.2, 0.8]),
  tolerance: 3e-5,
});

describe('withClassifierFreeGuidance', () => {
  beforeAll(() => useBackend('cpu'));

  it('answers synchronously exactly when the wrapped teacher does, with the same velocity', async () => {
    const asyncOnly = conditionalTeacher([]);
    const calls: number[] = [];
    const inner = conditionalTeacher(calls);
    // the same teacher answering synchronously too: its async path resolved at once
    const local: Teacher = {
      ...inner,
      velocitySync(x, sigma, condition) {
        calls.push(x.shape[0]!);
        return tf.tidy(() => {
          const labels = condition!.labels!;
          let u = tf.zerosLike(x);
          flows.forEach((flow, k) => {
            u = tf.add(u, tf.mul(tf.slice(labels, [0, k], [-1, 1]), flow.velocity(x, sigma)));
          });
          return u;
        });
      },
    };
    const options = {
      guidanceScale: 3,
      interval: [0.2, 0.8] as const,
      unconditional: { labels: oneHot([K]) },
    };
    expect(withClassifierFreeGuidance(asyncOnly, options).velocitySync).toBeUndefined();
    for (const batched of [true, false]) {
      const guided = withClassifierFreeGuidance(local, { ...options, batched });
      const x = createRandom(5).normalTensor([4, 2]);
      const condition = { labels: oneHot([0, 1, 2, 1]) };
      const sigma = tf.tensor1d([0.1, 0.3, 0.5, 0.9]);
      const before = tf.memory().numTensors;
      calls.length = 0;
      const sync = guided.velocitySync!(x, sigma, condition);
      expect(calls).toEqual(batched ? [8] : [4, 4]);
      const async = await withClassifierFreeGuidance(asyncOnly, { ...options, batched }).velocity(
        x,
        sigma,
        condition,
      );
      expect(tf.memory().numTensors - before).toBe(2);
      expect(maxAbsDifference(sync.dataSync(), async.dataSync())).toBe(0);
      const reference = cfgReference(
        x.dataSync() as Float32Array,
        [0.1, 0.3, 0.5, 0.9],
        [0, 1, 2, 1],
        3,
        [0.2, 0.8],
      );
      expect(maxAbsDifference(sync.dataSync(), reference)).toBeLessThan(3e-5);
      // an error of the wrapped teacher's synchronous answer surfaces, and nothing is left behind
      const failing = withClassifierFreeGuidance(
        {
          ...local,
          velocitySync: () => {
            throw new Error('lost the model');
          },
        },
        { ...options, batched },
      );
      const count = tf.memory().numTensors;
      expect(() => failing.velocitySync!(x, sigma, condition)).toThrow('lost the model');
      expect(tf.memory().numTensors).toBe(count);
      tf.dispose([x, sigma, sync, async, condition.labels]);
    }
  });

  it('batches cond + uncond into one call of 2B, or makes two calls of B, with the same result', async () => {
    const batchedCalls: number[] = [];
    const separateCalls: number[] = [];
    const options = { guidanceScale: 4, unconditional: { labels: oneHot([K]) } };
    const batched = withClassifierFreeGuidance(conditionalTeacher(batchedCalls), options);
    const separate = withClassifierFreeGuidance(conditionalTeacher(separateCalls), {
      ...options,
      batched: false,
    });
    const random = createRandom(3);
    const x = random.normalTensor([5, 2]);
    const labels = [0, 1, 2, 0, 1];
    const condition = { labels: oneHot(labels) };
    const sigma = tf.tensor1d([0.1, 0.3, 0.5, 0.7, 0.95]);
    const before = tf.memory().numTensors;
    const a = await batched.velocity(x, sigma, condition);
    const b = await separate.velocity(x, sigma, condition);
    expect(tf.memory().numTensors - before).toBe(2);
    expect(batchedCalls).toEqual([10]);
    expect(separateCalls).toEqual([5, 5]);
    expect(maxAbsDifference(a.dataSync(), b.dataSync())).toBeLessThan(1e-6);
    const reference = cfgReference(
      x.dataSync() as Float32Array,
      [0.1, 0.3, 0.5, 0.7, 0.95],
      labels,
      4,
      [0, 1],
    );
    expect(maxAbsDifference(a.dataSync(), reference)).toBeLessThan(3e-5);
    expect(batched.metadata.guidance).toBe('cfg');
    tf.dispose([x, sigma, a, b, condition.labels]);
  });

  it('skips the unconditional pass when no σ of the batch is inside the interval', async () => {
    const calls: number[] = [];
    const teacher = withClassifierFreeGuidance(conditionalTeacher(calls), {
      guidanceScale: 4,
      interval: [0, 0.6],
      unconditional: (condition) => ({ labels: tf.zerosLike(condition.labels!) }),
    });
    const x = tf.ones([2, 2]);
    const condition = { labels: oneHot([0, 2]) };
    const u = await teacher.velocity(x, 0.8, condition);
    expect(calls).toEqual([2]);
    const reference = cfgReference(x.dataSync() as Float32Array, [0.8, 0.8], [0, 2], 4, [0, 0.6]);
    expect(maxAbsDifference(u.dataSync(), reference)).toBeLessThan(3e-5);
    tf.dispose([x, u, condition.labels]);
  });

  it('with scale 1 returns the conditional velocity, with scale 0 the unconditional one', async () => {
    const x = tf.tensor2d([0.3, -0.2, 1, 1], [2, 2]);
    const condition = { labels: oneHot([1, 2]) };
    const unconditional = { labels: oneHot([K]) };
    for (const scale of [0, 1]) {
      const teacher = withClassifierFreeGuidance(conditionalTeacher([]), {
        guidanceScale: scale,
        unconditional,
      });
      const u = await teacher.velocity(x, 0.5, condition);
      const expected = [
        ...flows[scale === 1 ? 1 : K]!.velocityFloat64([0.3, -0.2], 0.5),
        ...flows[scale === 1 ? 2 : K]!.velocityFloat64([1, 1], 0.5),
      ];
      expect(maxAbsDifference(u.dataSync(), expected)).toBeLessThan(3e-5);
      u.dispose();
    }
    tf.dispose([x, condition.labels, unconditional.labels]);
  });

  it('rejects bad options, a missing condition and unconditional inputs of the wrong batch', async () => {
    const teacher = conditionalTeacher([]);
    const unconditional = { labels: oneHot([K]) };
    expect(() => withClassifierFreeGuidance(teacher, { guidanceScale: -1, unconditional })).toThrow(
      /guidanceScale/,
    );
    // The old option name fails, naming the new one.
    expect(() => withClassifierFreeGuidance(teacher, { scale: 2, unconditional } as never)).toThrow(
      /options\.scale.*guidanceScale/,
    );
    expect(() =>
      withClassifierFreeGuidance(teacher, { guidanceScale: 2, interval: [0.8, 0.2], unconditional }),
    ).toThrow(/interval\[1\]/);
    expect(() =>
      withClassifierFreeGuidance(teacher, { guidanceScale: 2, unconditional: 3 as never }),
    ).toThrow(InvalidArgumentError);
    expect(() => withClassifierFreeGuidance({} as Teacher, { guidanceScale: 2, unconditional })).toThrow(
      /teacher/,
    );
    const guided = withClassifierFreeGuidance(teacher, {
      guidanceScale: 2,
      unconditional: { labels: oneHot([K, K]) },
    });
    const x = tf.zeros([3, 2]);
    const condition = { labels: oneHot([0, 1, 2]) };
    await expect(guided.velocity(x, 0.5)).rejects.toThrow(/condition/);
    await expect(guided.velocity(x, 0.5, condition)).rejects.toThrow(/batch size 1 or 3/);
    tf.dispose([x, condition.labels, unconditional.labels]);
  });
});

describe('dropCondition', () => {
  beforeAll(() => useBackend('cpu'));

  it('replaces each sample by the null condition with probability p, the same flip for every input', () => {
    const batch = 400;
    const labels = oneHot(Array.from({ length: batch }, (_, i) => i % K));
    const text = tf.tidy(() =>
      tf.add(tf.zeros([batch, 2, 3]), tf.reshape(tf.range(0, batch), [batch, 1, 1])),
    );
    const nullCondition = { labels: oneHot([K]), text: tf.fill([1, 2, 3], -1) };
    const before = tf.memory().numTensors;
    const { condition, dropped } = dropCondition(
      { labels, text },
      { probability: 0.25, nullCondition, random: createRandom(9) },
    );
    expect(tf.memory().numTensors - before).toBe(2);
    const count = dropped.reduce((a, b) => a + b, 0);
    // Binomial(400, 0.25): mean 100, sd ≈ 8.7
    expect(count).toBeGreaterThan(70);
    expect(count).toBeLessThan(130);
    const newLabels = tf.tidy(() => tf.argMax(condition.labels!, 1)).dataSync();
    const newText = condition.text!.dataSync();
    for (let b = 0; b < batch; b++) {
      expect(newLabels[b]).toBe(dropped[b] ? K : b % K);
      expect(newText[b * 6]).toBe(dropped[b] ? -1 : b);
    }
    // the same seed flips the same coins
    const again = dropCondition(
      { labels, text },
      { probability: 0.25, nullCondition, random: createRandom(9) },
    );
    expect(Array.from(again.dropped)).toEqual(Array.from(dropped));
    tf.dispose([
      labels,
      text,
      ...Object.values(nullCondition),
      ...Object.values(condition),
      ...Object.values(again.condition),
    ]);
  });

  it('keeps everything at p = 0, drops everything at p = 1, and validates its inputs', () => {
    const labels = oneHot([0, 1]);
    const nullCondition = { labels: oneHot([K]) };
    const random = createRandom(1);
    const none = dropCondition({ labels }, { probability: 0, nullCondition, random });
    const all = dropCondition({ labels }, { probability: 1, nullCondition, random });
    expect(Array.from(none.dropped)).toEqual([0, 0]);
    expect(Array.from(all.dropped)).toEqual([1, 1]);
    expect(() => dropCondition({ labels }, { probability: 1.5, nullCondition, random })).toThrow(
      /probability/,
    );
    expect(() => dropCondition({ labels }, { probability: 0.5, nullCondition: {}, random })).toThrow(
      /nullCondition\.labels/,
    );
    const wrongWidth = { labels: tf.zeros([1, 7]) };
    expect(() => dropCondition({ labels }, { probability: 0.5, nullCondition: wrongWidth, random })).toThrow(
      /per-sample shape \[4\]/,
    );
    tf.dispose([
      labels,
      nullCondition.labels,
      wrongWidth.labels,
      ...Object.values(none.condition),
      ...Object.values(all.condition),
    ]);
  });
});
