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

describe('sampleModel: chunks', () => {
  beforeAll(() => useBackend('cpu'));

  it('runs any count in chunks: the same samples as one call, labels cycled across chunks, one re-noising stream, no leaks', async () => {
    const student = createStudent(
      createMLPBackbone({ inputDim: 2, width: 16, depth: 1, numClasses: 3, seed: 5 }),
      { family: gm, head: { numComponents: 3, logstdHiddenDim: 4 }, seed: 5 },
    );
    const manifest = describeModel(student, { sampleShape: [2], sampling: { numInferenceSteps: 2 } });
    const noise = createRandom(6).normalTensor([50, 2]);
    const before = tf.memory().numTensors;
    // labels [0, 1] over 50 rows, chunks of 15: the chunks starting at rows 15 and 45 must start with label 1
    const whole = await sampleModel(student, manifest, noise, { labels: [0, 1], chunkRows: 64 });
    const chunked = await sampleModel(student, manifest, noise, { labels: [0, 1], chunkRows: 15 });
    expect(chunked.x.shape).toEqual([50, 2]);
    expect(Array.from(chunked.labels!)).toEqual(Array.from(whole.labels!));
    expect(maxAbsDifference(chunked.x.dataSync(), whole.x.dataSync())).toBeLessThan(1e-5);
    // with the labels one row later the samples differ: the check above sees each row's label
    const shifted = await sampleModel(student, manifest, noise, { labels: [1, 0], chunkRows: 16 });
    expect(maxAbsDifference(shifted.x.dataSync(), whole.x.dataSync())).toBeGreaterThan(1e-3);
    // h > 0: the chunks continue one random stream, so equal noise rows in two chunks are re-noised differently
    const repeated = tf.tidy(() => tf.concat([noise.slice(0, 16), noise.slice(0, 16)]));
    const stochastic = await sampleModel(student, manifest, repeated, {
      labels: [0],
      chunkRows: 16,
      h: 'inf',
      seed: 3,
    });
    const rows = stochastic.x.dataSync();
    expect(maxAbsDifference(rows.subarray(0, 32), rows.subarray(32, 64))).toBeGreaterThan(1e-3);
    tf.dispose([whole.x, chunked.x, shifted.x, stochastic.x, repeated]);
    expect(tf.memory().numTensors).toBe(before);
    noise.dispose();
    student.dispose();
  });
});
