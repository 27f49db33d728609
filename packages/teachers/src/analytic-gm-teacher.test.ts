import { createAnalyticGMFlow, InvalidArgumentError, sampleTeacher } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { createAnalyticGMTeacher } from './analytic-gm-teacher';
import { describeTeacherContract } from './testing';

const spec = {
  means: [
    [-1, 0.5],
    [1.5, -0.5],
    [0, 2],
  ],
  std: 0.3,
  weights: [0.2, 0.5, 0.3],
};
const reference = createAnalyticGMFlow(spec);

describeTeacherContract('analytic GM teacher', {
  metadata: {
    layout: 'vector',
    shift: 1,
    guidance: 'none',
    conditionNames: [],
    description: 'analytic Gaussian mixture (K = 3, C = 2, std = 0.3)',
  },
  create: () => createAnalyticGMTeacher(spec),
  makeInputs: (batch, random) => ({
    x: random.normalTensor([batch, 5, 2]),
    sigma: Array.from({ length: batch }, () => 0.05 + 0.9 * random.uniform()),
  }),
  reference: ({ x, sigma }) => {
    const values = x.dataSync();
    const perRow = Array.from({ length: values.length / 2 }, (_, i) => sigma[Math.floor(i / 5)]!);
    return reference.velocityFloat64(values, perRow);
  },
  tolerance: 2e-5,
});

describe('createAnalyticGMTeacher', () => {
  it('validates its options', () => {
    expect(() => createAnalyticGMTeacher({ ...spec, weights: [0.5, 0.5, 0.5] })).toThrow(
      InvalidArgumentError,
    );
    expect(() => createAnalyticGMTeacher({ ...spec, std: 0 })).toThrow(/std/);
    expect(() => createAnalyticGMTeacher({ means: [], std: 1 })).toThrow(/means/);
  });

  it('drives the teacher sampler to the data distribution', async () => {
    await useBackend('cpu');
    const teacher = createAnalyticGMTeacher(spec);
    expect(teacher.metadata).toMatchObject({ layout: 'vector', guidance: 'none', conditionNames: [] });
    const noise = tf.randomNormal([400, 2], 0, 1, 'float32', 3);
    const x = await sampleTeacher(teacher, noise, { numInferenceSteps: 64 });
    // every sample lands near a component mean (within 4 std of the component)
    const values = x.dataSync();
    const components = reference.assignComponents(values);
    let far = 0;
    for (let i = 0; i < 400; i++) {
      const m = spec.means[components[i]!]!;
      const d = Math.hypot(values[2 * i]! - m[0]!, values[2 * i + 1]! - m[1]!);
      if (d > 4 * spec.std) far++;
    }
    expect(far).toBeLessThan(8);
    // the sync and async paths agree
    const a = teacher.velocitySync(noise, 0.4);
    const b = await teacher.velocity(noise, 0.4);
    expect(maxAbsDifference(a.dataSync(), b.dataSync())).toBe(0);
    tf.dispose([noise, x, a, b]);
  });
});
