import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAnalyticGMFlow } from './analytic-gm-flow';
import { InvalidArgumentError } from './errors';
import type { PolicyFamily } from './policy-family';
import { createRandom } from './random';
import { rolloutOpByOp } from './rollout';
import { sample, sampleTeacher } from './sample';
import { useBackend } from './testing/backends';
import { countLeaks, relativeError } from './testing/numerics';
import type { Policy, Student, Teacher } from './types';

const flow = createAnalyticGMFlow({
  means: [
    [-1, 0],
    [1, 1],
    [0, -1.5],
  ],
  std: 0.3,
});

/**
 * A family whose policy is the exact teacher field; its sampling option `level` becomes the `create` option
 * `temperature` on every step but the last (recorded in `seen`, to check what the sampler passes).
 */
const seen: unknown[] = [];
const exactFamily: PolicyFamily<{ tag: number }, { temperature?: number }> = {
  specificationVersion: 'v2',
  name: 'exact',
  paramShapes: () => ({}),
  sampling: {
    options: { level: { type: 'number-or-auto', min: 0, minExclusive: true, description: 'test option' } },
    policyOptions: ({ level }, { step, numInferenceSteps, isLast }) =>
      level === undefined || isLast
        ? {}
        : { temperature: level === 'auto' ? step / numInferenceSteps : (level as number) },
  },
  create(_params, xSrc, _sigmaSrc, options) {
    seen.push(options?.temperature);
    const policy: Policy = {
      family: 'exact',
      batchSize: xSrc.shape[0]!,
      velocity: (x, sigma) => flow.velocity(x, sigma),
      detach: () => policy,
      dispose: () => {},
    };
    return policy;
  },
};
const student: Student<{ tag: number }> = { family: 'exact', predict: () => ({ tag: 1 }) };

describe('sample', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('with an exact policy, N steps of rollouts equal one teacher rollout over the same substeps', () => {
    const noise = createRandom(1).normalTensor([32, 2]);
    for (const numInferenceSteps of [1, 2, 4]) {
      seen.length = 0;
      const out = sample(student, exactFamily, noise, { numInferenceSteps, substeps: 64 });
      // the same grid: each step spans 1/N raw time with 64/N substeps
      const reference = rolloutOpByOp(flow, noise, {
        sigmaSrc: new Float32Array(32).fill(1),
        sigmaDst: new Float32Array(32),
        substeps: 64,
        shift: 1,
      });
      expect(relativeError(out.dataSync(), reference.dataSync())).toBeLessThan(1e-5);
      expect(seen).toEqual(new Array(numInferenceSteps).fill(undefined));
      tf.dispose([out, reference]);
    }
    noise.dispose();
  });

  it("turns the family's sampling options into create options per step, through the family", () => {
    const noise = tf.zeros([2, 2]);
    seen.length = 0;
    tf.dispose(
      sample(student, exactFamily, noise, {
        numInferenceSteps: 4,
        familyOptions: { level: 'auto' },
        substeps: 8,
      }),
    );
    expect(seen).toEqual([0, 0.25, 0.5, undefined]);
    seen.length = 0;
    tf.dispose(
      sample(student, exactFamily, noise, {
        numInferenceSteps: 2,
        familyOptions: { level: 0.4 },
        substeps: 8,
      }),
    );
    expect(seen).toEqual([0.4, undefined]);
    noise.dispose();
  });

  it('leaks nothing when the student, the family or the rollout fails at any step', () => {
    const noise = createRandom(3).normalTensor([4, 2]);
    for (const failAt of [0, 1, 2]) {
      let step = 0;
      const failing: Student<{ tag: number }> = {
        family: 'exact',
        predict: () => {
          if (step++ === failAt) throw new Error(`student fails at step ${failAt}`);
          return { tag: 1 };
        },
      };
      const before = tf.memory().numTensors;
      expect(() => sample(failing, exactFamily, noise, { numInferenceSteps: 3, substeps: 8 })).toThrow(
        `student fails at step ${failAt}`,
      );
      expect(tf.memory().numTensors).toBe(before);
      const onStep = () => {
        throw new Error('onStep fails');
      };
      expect(() =>
        sample(student, exactFamily, noise, { numInferenceSteps: 2, substeps: 8, onStep }),
      ).toThrow('onStep fails');
      expect(tf.memory().numTensors).toBe(before);
    }
    noise.dispose();
  });

  it('the teacher sampler leaks nothing when the teacher fails part-way', async () => {
    const noise = createRandom(4).normalTensor([3, 2]);
    let calls = 0;
    const failing: Teacher = {
      metadata: {},
      velocity: async (x) => {
        if (++calls === 3) throw new Error('teacher unavailable');
        return tf.zerosLike(x);
      },
    };
    const before = tf.memory().numTensors;
    await expect(sampleTeacher(failing, noise, { numInferenceSteps: 5 })).rejects.toThrow(
      'teacher unavailable',
    );
    expect(tf.memory().numTensors).toBe(before);
    noise.dispose();
  });

  it('SDE sampling is seedable and leaks nothing', () => {
    const noise = createRandom(2).normalTensor([16, 2]);
    const { result: a, leaked } = countLeaks(() =>
      sample(student, exactFamily, noise, { numInferenceSteps: 3, h: 1, seed: 5, substeps: 16 }),
    );
    expect(leaked).toBe(0);
    const b = sample(student, exactFamily, noise, { numInferenceSteps: 3, h: 1, seed: 5, substeps: 16 });
    const c = sample(student, exactFamily, noise, { numInferenceSteps: 3, h: 1, seed: 6, substeps: 16 });
    expect(relativeError(a.dataSync(), b.dataSync())).toBe(0);
    expect(relativeError(a.dataSync(), c.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([a, b, c, noise]);
  });

  it('teacher Euler sampling walks the warped grid', async () => {
    const teacher: Teacher = {
      metadata: { shift: 3 },
      velocity: async (x, sigma) => flow.velocity(x, sigma),
    };
    const noise = createRandom(3).normalTensor([8, 2]);
    const before = tf.memory().numTensors;
    const out = await sampleTeacher(teacher, noise, { numInferenceSteps: 16 });
    expect(tf.memory().numTensors - before).toBe(1);
    // The old option name fails, naming the new one.
    await expect(sampleTeacher(teacher, noise, { numSteps: 16 } as never)).rejects.toThrow(
      /options\.numSteps.*numInferenceSteps/,
    );
    await expect(sampleTeacher(teacher, noise, { numSteps: 16 } as never)).rejects.toThrow(
      InvalidArgumentError,
    );
    const reference = rolloutOpByOp(flow, noise, {
      sigmaSrc: new Float32Array(8).fill(1),
      sigmaDst: new Float32Array(8),
      substeps: 16,
      shift: 3,
    });
    expect(relativeError(out.dataSync(), reference.dataSync())).toBeLessThan(1e-5);
    tf.dispose([out, reference, noise]);
  });

  it('the midpoint teacher solver converges at second order, Euler at first (analytic mixture ODE)', async () => {
    const teacher: Teacher = { metadata: {}, velocity: async (x, sigma) => flow.velocity(x, sigma) };
    const noise = createRandom(5).normalTensor([64, 2]);
    const solve = (solver: 'euler' | 'midpoint', numInferenceSteps: number) =>
      sampleTeacher(teacher, noise, { numInferenceSteps, solver });
    const reference = await solve('midpoint', 2048);
    const error = async (solver: 'euler' | 'midpoint', n: number) => {
      const x = await solve(solver, n);
      const e = relativeError(x.dataSync(), reference.dataSync());
      x.dispose();
      return e;
    };
    const euler = [await error('euler', 16), await error('euler', 32)];
    const midpoint = [await error('midpoint', 16), await error('midpoint', 32)];
    // halving the step: error ÷ 2 (Euler), ÷ 4 (midpoint)
    expect(euler[0]! / euler[1]!).toBeGreaterThan(1.6);
    expect(euler[0]! / euler[1]!).toBeLessThan(2.5);
    expect(midpoint[0]! / midpoint[1]!).toBeGreaterThan(3.2);
    expect(midpoint[1]!).toBeLessThan(euler[1]! / 10);
    const before = tf.memory().numTensors;
    const out = await solve('midpoint', 4);
    expect(tf.memory().numTensors - before).toBe(1);
    await expect(
      sampleTeacher(teacher, noise, { numInferenceSteps: 4, solver: 'rk4' as never }),
    ).rejects.toThrow(/options\.solver/);
    tf.dispose([out, reference, noise]);
  });

  it('rejects mismatched students and bad options', () => {
    const noise = tf.zeros([2, 2]);
    expect(() =>
      sample({ family: 'gm', predict: () => ({}) } as never, exactFamily, noise, { numInferenceSteps: 2 }),
    ).toThrow(InvalidArgumentError);
    expect(() => sample(student, exactFamily, noise, { numInferenceSteps: 0 })).toThrow(/numInferenceSteps/);
    expect(() =>
      sample(student, exactFamily, noise, { numInferenceSteps: 2, familyOptions: { level: 0 } }),
    ).toThrow(/options.familyOptions.level/);
    expect(() =>
      sample(student, exactFamily, noise, { numInferenceSteps: 2, familyOptions: { temperature: 0.5 } }),
    ).toThrow(/options.familyOptions.temperature.*declared options: level/);
    expect(() => sample(student, exactFamily, tf.zeros([2]), { numInferenceSteps: 2 })).toThrow(/noise/);
    noise.dispose();
  });
});
