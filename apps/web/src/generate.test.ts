import '@tensorflow/tfjs-backend-cpu';
import { createAnalyticGMFlow, createRandom, InvalidArgumentError, rollout, sample } from '@piflow/core';
import { maxAbsDifference } from '@piflow/core/testing';
import { createFlowModel, createMLPBackbone, createStudent } from '@piflow/models';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyTrajectories, samplingSettings, teacherTrajectories } from './generate';
import { meanEndpointGap } from './metrics';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const student = createStudent(createMLPBackbone({ inputDim: 2, width: 16, depth: 1, seed: 4 }), {
  family: gm,
  head: { numComponents: 3, logstdHiddenDim: 8, initialLogstd: Math.log(0.3) },
});
afterAll(() => student.dispose());

async function leakedBy(fn: () => Promise<unknown>): Promise<number> {
  const before = tf.memory().numTensors;
  await fn();
  return tf.memory().numTensors - before;
}

describe('samplingSettings', () => {
  it('reads the manifest and falls back to the sampler defaults', () => {
    expect(samplingSettings({}, 2)).toEqual({
      numInferenceSteps: 2,
      shift: 1,
      finalStepSizeScale: 1,
      familyOptions: {},
      substeps: 128,
    });
    expect(
      samplingSettings(
        { sampling: { shift: 3, finalStepSizeScale: 0.5, familyOptions: { temperature: 0.3 } } },
        4,
        32,
      ),
    ).toEqual({
      numInferenceSteps: 4,
      shift: 3,
      finalStepSizeScale: 0.5,
      familyOptions: { temperature: 0.3 },
      substeps: 32,
    });
  });

  it('rejects bad step counts and sampling blocks, naming the argument', () => {
    expect(() => samplingSettings({}, 0)).toThrow(InvalidArgumentError);
    expect(() => samplingSettings({}, 1.5)).toThrow(/numInferenceSteps/);
    expect(() => samplingSettings({ sampling: { shift: 0 } }, 1)).toThrow(/manifest.sampling.shift/);
    expect(() => samplingSettings({ sampling: { finalStepSizeScale: 2 } }, 1)).toThrow(/finalStepSizeScale/);
  });
});

describe('policyTrajectories', () => {
  // sample() rolls out through the same policies (op by op on cpu); the kept substeps must end where it ends.
  it.each([
    [1, { shift: 1, finalStepSizeScale: 1 }],
    [2, { shift: 3, finalStepSizeScale: 0.5 }],
    [4, { shift: 2, finalStepSizeScale: 1, familyOptions: { temperature: 0.5 } }],
    [4, { shift: 1, finalStepSizeScale: 1, familyOptions: { temperature: 'auto' } }],
  ])('ends where sample() ends at %i step(s) (float32, ≤ 1e-5)', async (steps, sampling) => {
    const settings = samplingSettings({ sampling }, steps, 16);
    const noise = createRandom(steps).normalTensor([12, 2]);
    const expected = sample(student, gm, noise, settings);
    const paths = await policyTrajectories(student, noise, settings);
    const last = paths.points.subarray((paths.length - 1) * 12 * 2);
    expect(maxAbsDifference(last, await expected.data())).toBeLessThan(1e-5);
    expect(paths.count).toBe(12);
    expect(paths.dim).toBe(2);
    expect(paths.evaluations).toHaveLength(steps);
    expect(paths.evaluations[0]).toBe(0);
    // The first state is the noise itself.
    expect(maxAbsDifference(paths.points.subarray(0, 24), await noise.data())).toBe(0);
    tf.dispose([noise, expected]);
  });

  it('takes round(raw span · substeps) substeps per step and leaks no tensor', async () => {
    const settings = samplingSettings({}, 4, 16);
    const noise = createRandom(9).normalTensor([5, 2]);
    let paths: Awaited<ReturnType<typeof policyTrajectories>> | undefined;
    const leaked = await leakedBy(async () => {
      paths = await policyTrajectories(student, noise, settings);
    });
    expect(leaked).toBe(0);
    expect(paths!.length).toBe(17);
    expect(paths!.evaluations).toEqual([0, 4, 8, 12]);
    noise.dispose();
  });

  it('validates its inputs', async () => {
    const settings = samplingSettings({}, 1);
    await expect(policyTrajectories({} as never, tf.zeros([2, 2]), settings)).rejects.toThrow(/student/);
    await expect(policyTrajectories(student, tf.zeros([2]), settings)).rejects.toThrow(/noise/);
    const odd = { ...settings, familyOptions: { temperature: 0 } };
    await expect(policyTrajectories(student, tf.zeros([2, 2]), odd)).rejects.toThrow(
      /settings.familyOptions.temperature/,
    );
  });
});

describe('teacherTrajectories', () => {
  const flow = createAnalyticGMFlow({
    means: [
      [-1, 1],
      [1, -1],
    ],
    std: 0.3,
  });

  it("follows the teacher's Euler ODE on the rollout grid (vs core's rollout, ≤ 1e-5)", async () => {
    const noise = createRandom(3).normalTensor([10, 2]);
    const teacher = { velocity: (x: tf.Tensor, s: number) => flow.velocity(x, s) } as never;
    for (const shift of [1, 3]) {
      const paths = await teacherTrajectories(teacher, noise, { shift, substeps: 32 });
      const expected = rollout(flow, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 32, shift });
      expect(paths.length).toBe(33);
      expect(paths.evaluations).toEqual([]);
      expect(maxAbsDifference(paths.points.subarray(32 * 20), await expected.data())).toBeLessThan(1e-5);
      expected.dispose();
    }
    noise.dispose();
  });

  it('runs a flow model without leaking, and a policy imitating the exact posterior lands on its ends', async () => {
    const model = createFlowModel(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }));
    const noise = createRandom(5).normalTensor([6, 2]);
    const leaked = await leakedBy(() => teacherTrajectories(model, noise, { shift: 1, substeps: 8 }));
    expect(leaked).toBe(0);
    model.dispose();

    // Oracle: a GM "student" that outputs the exact x0-posterior reproduces the teacher's ODE at 1 step.
    const oracle = {
      family: 'gm' as const,
      predict: (x: tf.Tensor, sigma: tf.Tensor1D) => flow.posterior(x, sigma.arraySync()[0]!),
    } as never;
    const teacherPaths = await teacherTrajectories(
      { velocity: (x: tf.Tensor, s: number) => flow.velocity(x, s) } as never,
      noise,
      { shift: 1, substeps: 64 },
    );
    const policyPaths = await policyTrajectories(oracle, noise, samplingSettings({}, 1, 64));
    expect(meanEndpointGap(policyPaths, teacherPaths)).toBeLessThan(1e-4);
    noise.dispose();
  });

  it('validates its inputs', async () => {
    await expect(
      teacherTrajectories({} as never, tf.zeros([2, 2]), { shift: 1, substeps: 4 }),
    ).rejects.toThrow(/teacher/);
    const teacher = { velocity: (x: tf.Tensor) => x } as never;
    await expect(teacherTrajectories(teacher, tf.zeros([2, 2]), { shift: 0, substeps: 4 })).rejects.toThrow(
      /shift/,
    );
    await expect(teacherTrajectories(teacher, tf.zeros([2, 2]), { shift: 1, substeps: 0 })).rejects.toThrow(
      /substeps/,
    );
  });
});
