import { createAnalyticGMFlow, createRandom, InvalidArgumentError, sample } from '@piflow/core';
import { countLeaks, readFloat32, relativeError, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSingleX0Student, dx } from './index';

const flow = createAnalyticGMFlow({
  means: [
    [-2, 0],
    [2, 0],
    [0, 2],
  ],
  std: 0.3,
});
// The teacher is structural: any object with velocitySync (here core's exact analytic GM flow).
const teacher = { velocitySync: (x: tf.Tensor, sigma: tf.Tensor1D) => flow.velocity(x, sigma) };

for (const backend of testBackends()) {
  describe(`single-x0 student on ${backend}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it("outputs the teacher's x0 prediction x − σ·u as a DX grid [B, 1, …] without leaks", async () => {
      const student = createSingleX0Student(teacher);
      expect(student.family).toBe(dx.name);
      const x = createRandom(1).normalTensor([4, 2]);
      const sigmas = [1, 0.8, 0.45, 0.1];
      const sigma = tf.tensor1d(sigmas);
      const { result: params, leaked } = countLeaks(() => student.predict(x, sigma));
      expect(leaked).toBe(0);
      expect(params.space).toBe('x0');
      expect(params.x0Grid.shape).toEqual([4, 1, 2]);
      const u = flow.velocity(x, sigma);
      const xs = await readFloat32(x);
      const us = await readFloat32(u);
      const expected = xs.map((v, i) => v - sigmas[Math.floor(i / 2)]! * us[i]!);
      expect(relativeError(await readFloat32(params.x0Grid), expected)).toBeLessThan(1e-6);
      tf.dispose([x, sigma, u, params.x0Grid]);
    });

    it("a 1-step π-Flow sample through the dx family lands on the teacher's x0 prediction at σ = 1", async () => {
      const noise = createRandom(2).normalTensor([8, 2]);
      const before = tf.memory().numTensors;
      const x = sample(createSingleX0Student(teacher), dx, noise, { numInferenceSteps: 1 });
      expect(tf.memory().numTensors - before).toBe(1);
      // N = 1: x0 is constant, so the rollout of u = (x − x0)/σ from σ = 1 to 0 ends exactly on it
      const expected = tf.tidy(() => tf.sub(noise, flow.velocity(noise, 1)));
      expect(relativeError(await readFloat32(x), await readFloat32(expected))).toBeLessThan(1e-5);
      tf.dispose([noise, x, expected]);
    });
  });
}

describe('createSingleX0Student', () => {
  it('rejects a teacher without velocitySync with an InvalidArgumentError naming `teacher`', () => {
    for (const bad of [undefined, null, {}, { velocity: async () => tf.scalar(0) }, { velocitySync: 1 }]) {
      let error: unknown;
      try {
        createSingleX0Student(bad as never);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe('teacher');
    }
  });
});
