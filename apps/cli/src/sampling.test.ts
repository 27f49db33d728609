import '@tensorflow/tfjs-backend-cpu';
import { createRandom, sample } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import { createMLPBackbone, createStudent, describeModel } from '@piflow/models';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { sampleModel } from './sampling';

describe('sampleModel: elastic inference', () => {
  beforeAll(() => useBackend('cpu'));

  it('keeps the trained final step size scale and the recorded sampling options at any step count', async () => {
    const student = createStudent(createMLPBackbone({ inputDim: 2, width: 16, depth: 1, seed: 2 }), {
      family: gm,
      head: { numComponents: 3, logstdHiddenDim: 4 },
      seed: 2,
    });
    const sampling = {
      shift: 2,
      numInferenceSteps: 4,
      finalStepSizeScale: 0.5,
      familyOptions: { temperature: 0.6 },
    };
    const manifest = describeModel(student, { sampleShape: [2], sampling });
    const noise = createRandom(3).normalTensor([64, 2]);
    for (const nfe of [4, 8, 2]) {
      const { x } = await sampleModel(student, manifest, noise, { nfe });
      const expected = sample(student, gm, noise, {
        numInferenceSteps: nfe,
        shift: 2,
        finalStepSizeScale: 0.5,
        familyOptions: { temperature: 0.6 },
      });
      // what elastic inference used to do: uniform steps and the family's default temperature
      const uniform = sample(student, gm, noise, { numInferenceSteps: nfe, shift: 2 });
      expect(maxAbsDifference(x.dataSync(), expected.dataSync())).toBeLessThan(1e-6);
      expect(maxAbsDifference(x.dataSync(), uniform.dataSync())).toBeGreaterThan(1e-3);
      tf.dispose([x, expected, uniform]);
    }
    // an explicit option wins over the recorded one
    const { x } = await sampleModel(student, manifest, noise, { nfe: 8, familyOptions: { temperature: 1 } });
    const expected = sample(student, gm, noise, {
      numInferenceSteps: 8,
      shift: 2,
      finalStepSizeScale: 0.5,
      familyOptions: { temperature: 1 },
    });
    expect(maxAbsDifference(x.dataSync(), expected.dataSync())).toBeLessThan(1e-6);
    tf.dispose([x, expected, noise]);
    student.dispose();
  });
});
