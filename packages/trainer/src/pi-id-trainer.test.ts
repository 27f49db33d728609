import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createAnalyticGMFlow,
  createRandom,
  detachParams,
  disposeParams,
  InvalidArgumentError,
  rollout,
  type Sigma,
  SyncUnavailableError,
  sample,
  type Teacher,
} from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { flowData, flowTeacher, flowTeacherSync } from './__fixtures__/analytic-teacher';
import { mlpGMStudent, offsetPosteriorStudent } from './__fixtures__/students';
import { createPiIDTrainer, NonFiniteLossError } from './pi-id-trainer';

const flow = createAnalyticGMFlow({
  means: [
    [-1.5, 0],
    [1, 1],
    [0.5, -1.5],
  ],
  std: 0.25,
  weights: [0.3, 0.4, 0.3],
});
const teacher = flowTeacher(flow);
const data = flowData(flow);

/** A step that must fail with `error`: it leaves the tensor count and the student's weights as they were. */
async function expectFailedStepLeavesNothing(
  trainer: { trainStep(): Promise<unknown>; student: { variables: readonly tf.Variable[] } },
  error: string | RegExp,
): Promise<void> {
  const before = tf.memory().numTensors;
  const weights = trainer.student.variables.map((v) => Array.from(v.dataSync()));
  await expect(trainer.trainStep()).rejects.toThrow(error);
  expect(tf.memory().numTensors).toBe(before);
  expect(trainer.student.variables.map((v) => Array.from(v.dataSync()))).toEqual(weights);
}

describe('π-ID trainer', () => {
  beforeAll(() => useBackend('cpu'));

  it('has zero loss at the exact posterior (oracle): on-policy with chained states, and data-free', async () => {
    // With a window or teacher intervals (trajectory mixing) the prediction is the student's mean velocity
    // over an interval while the target is the teacher's velocity at its start (its one-step Euler secant),
    // so there the loss is small but not zero at the exact policy — as in the reference.
    for (const extra of [
      {},
      { numIntermediateStates: 4 },
      { data: undefined, sampleShape: [2] },
      // trained from any σ, and weighted on x0: the exact posterior is still a zero of the loss
      { segmentSampling: 'continuous' as const },
      { lossWeighting: 'x0' as const, gradientAccumulation: 2 },
    ]) {
      const student = offsetPosteriorStudent(flow, [0, 0]);
      const trainer = createPiIDTrainer({
        student,
        family: gm,
        teacher,
        data,
        batchSize: 16,
        numInferenceSteps: 3,
        finalStepSizeScale: 0.5,
        shift: 2,
        substeps: 32,
        familyOptions: { dropout: 0 },
        optimizer: { learningRate: 1e-9 },
        ...extra,
      });
      const metrics = await trainer.trainStep();
      expect(metrics.loss).toBeLessThan(1e-9);
      trainer.dispose();
      student.dispose!();
    }
  });

  it('weights the same states by 1, σ, σ² or σ³; accumulates micro-batches into one update', async () => {
    const losses: Record<string, number> = {};
    for (const lossWeighting of ['velocity', 'sigma', 'x0', 'sigma3'] as const) {
      const student = offsetPosteriorStudent(flow, [0.4, -0.3]);
      const trainer = createPiIDTrainer({
        student,
        family: gm,
        teacher,
        data,
        batchSize: 32,
        numInferenceSteps: 2,
        substeps: 32,
        lossWeighting,
        optimizer: { learningRate: 1e-9 },
        seed: 4,
      });
      expect(trainer.lossWeighting).toBe(lossWeighting);
      losses[lossWeighting] = (await trainer.trainStep()).loss;
      trainer.dispose();
      student.dispose!();
    }
    // σ ≤ 1 at every state, and < 1 at almost all: strictly decreasing
    expect(losses.sigma!).toBeLessThan(losses.velocity!);
    expect(losses.x0!).toBeLessThan(losses.sigma!);
    expect(losses.sigma3!).toBeLessThan(losses.x0!);
    expect(losses.sigma3!).toBeGreaterThan(0);
    // the family's weighting applies unless overridden
    const student = offsetPosteriorStudent(flow, [0, 0]);
    const withFamily = (lossWeighting?: 'velocity') =>
      createPiIDTrainer({
        student,
        family: { ...gm, training: { ...gm.training!, lossWeighting: 'x0' } },
        teacher,
        data,
        batchSize: 4,
        numInferenceSteps: 1,
        ...(lossWeighting ? { lossWeighting } : {}),
      });
    expect(withFamily().lossWeighting).toBe('x0');
    expect(withFamily('velocity').lossWeighting).toBe('velocity');
    expect(() => withFamily('u' as never)).toThrow(/lossWeighting/);
    // gradient accumulation: one update per `gradientAccumulation` data batches
    let batches = 0;
    const counted = createPiIDTrainer({
      student,
      family: gm,
      teacher,
      data: (n, random) => {
        batches++;
        return data(n, random);
      },
      batchSize: 8,
      numInferenceSteps: 2,
      gradientAccumulation: 3,
      optimizer: { learningRate: 1e-9 },
    });
    await counted.trainStep();
    await counted.trainStep();
    expect(batches).toBe(6);
    expect(counted.step).toBe(2);
    expect(counted.iteration).toBe(2);
    counted.dispose();
    student.dispose!();
  });

  it('pulls a perturbed exact student back to the exact posterior', async () => {
    const student = offsetPosteriorStudent(flow, [0.4, -0.3]);
    const trainer = createPiIDTrainer({
      student,
      family: gm,
      teacher,
      data,
      batchSize: 64,
      numInferenceSteps: 2,
      substeps: 32,
      windowSubsteps: 1,
      optimizer: { learningRate: 0.02 },
      ema: false,
      seed: 1,
    });
    const first = await trainer.trainStep();
    for (let i = 0; i < 80; i++) await trainer.trainStep();
    const last = await trainer.trainStep();
    const offset = Array.from(student.offset.dataSync());
    expect(Math.hypot(...offset)).toBeLessThan(0.05);
    expect(last.loss).toBeLessThan(first.loss * 0.05);
    trainer.dispose();
    student.dispose!();
  });

  it('distils an MLP student that beats the teacher Euler sampler at 1 step, and GM dropout + EMA run', async () => {
    const random = createRandom(5);
    const student = mlpGMStudent(2, 4, 64, random);
    const trainer = createPiIDTrainer({
      student,
      family: gm,
      teacher,
      data,
      batchSize: 64,
      numInferenceSteps: 1,
      substeps: 32,
      familyOptions: { dropout: 0.1 },
      optimizer: { learningRate: 3e-3, warmupSteps: 20 },
      ema: { decay: 0.95 },
      seed: 2,
    });
    for (let i = 0; i < 250; i++) await trainer.trainStep();
    const noise = createRandom(9).normalTensor([512, 2]);
    const reference = rollout(flow, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 128 });
    const studentOut = await trainer.withEMA(() => sample(student, gm, noise, { numInferenceSteps: 1 }));
    const euler = tf.tidy(() => tf.sub(noise, flow.velocity(noise, 1)));
    const rms = (t: tf.Tensor) =>
      Math.sqrt(tf.tidy(() => tf.mean(tf.square(tf.sub(t, reference)))).dataSync()[0]!);
    const logDensity = (t: tf.Tensor) => flow.logDensity(t.dataSync()).reduce((a, b) => a + b, 0) / 512;
    expect(rms(studentOut)).toBeLessThan(0.5 * rms(euler));
    expect(logDensity(studentOut)).toBeGreaterThan(logDensity(euler) + 0.5);
    tf.dispose([noise, reference, studentOut, euler]);
    trainer.dispose();
  });

  it('keeps tf.memory().numTensors constant over 1000 steps and is reproducible from its seed', async () => {
    const run = async (steps: number, check: boolean) => {
      const student = mlpGMStudent(2, 3, 16, createRandom(4));
      const trainer = createPiIDTrainer({
        student,
        family: gm,
        teacher,
        data,
        batchSize: 8,
        numInferenceSteps: 2,
        substeps: 8,
        windowSubsteps: 1,
        numDecayIters: 100,
        familyOptions: { dropout: 0.1 },
        optimizer: { learningRate: 1e-3 },
        seed: 11,
      });
      await trainer.trainStep();
      const before = tf.memory().numTensors;
      const losses: number[] = [];
      for (let i = 1; i < steps; i++) losses.push((await trainer.trainStep()).loss);
      if (check) expect(tf.memory().numTensors).toBe(before);
      trainer.dispose();
      student.variables.forEach((v) => v.dispose());
      return losses;
    };
    const a = await run(1000, true);
    const b = await run(20, false);
    expect(b).toEqual(a.slice(0, 19));
  });

  it('answers a synchronous teacher inside the gradient pass: one student forward, the two-pass results', async () => {
    // The same seeds through both paths must give the same losses and weights: the one-pass path only stops
    // evaluating the student a second time. Dropout, trajectory mixing (states asked one by one), window
    // averaging and the data-free chain are on so every random draw and state is exercised; without mixing
    // (teacher ratio 0) the states do not depend on the teacher.
    for (const extra of [
      { windowSubsteps: 2, numDecayIters: 10, numIntermediateStates: 3 },
      { windowSubsteps: 2, numDecayIters: 0, numIntermediateStates: 3 },
      { data: undefined, sampleShape: [2], numDecayIters: 10 },
      { data: undefined, sampleShape: [2], numDecayIters: 0 },
    ]) {
      const run = async (sync: boolean) => {
        const student = mlpGMStudent(2, 3, 16, createRandom(4));
        let forwards = 0;
        const predict = student.predict.bind(student);
        student.predict = (...args) => {
          forwards += 1;
          return predict(...args);
        };
        const calls: number[] = [];
        const answer = (x: tf.Tensor, s: Sigma) => {
          calls.push(x.shape[0]!);
          return flow.velocity(x, s);
        };
        const t: Teacher = sync
          ? {
              metadata: {},
              velocitySync: answer,
              velocity: async () => Promise.reject(new Error('not used')),
            }
          : { metadata: {}, velocity: async (x, s) => answer(x, s) };
        const trainer = createPiIDTrainer({
          student,
          family: gm,
          teacher: t,
          data,
          batchSize: 8,
          numInferenceSteps: 2,
          substeps: 8,
          familyOptions: { dropout: 0.1 },
          optimizer: { learningRate: 1e-3 },
          seed: 5,
          ...extra,
        });
        await trainer.trainStep();
        const before = tf.memory().numTensors;
        forwards = 0;
        calls.length = 0;
        const losses: number[] = [];
        for (let i = 0; i < 6; i++) losses.push((await trainer.trainStep()).loss);
        expect(tf.memory().numTensors).toBe(before);
        const weights = student.variables.map((v) => Array.from(v.dataSync()));
        trainer.dispose();
        student.variables.forEach((v) => v.dispose());
        return { losses, weights, forwards, calls };
      };
      const twoPass = await run(false);
      const onePass = await run(true);
      const segments = 'data' in extra ? 6 * 2 : 6;
      const states = extra.numIntermediateStates ?? 2;
      expect(twoPass.forwards).toBe(2 * segments);
      expect(onePass.forwards).toBe(segments);
      // a local teacher is asked state by state (one state's activations at a time); an asynchronous one gets
      // the states that do not depend on it (no mixing) in one call: one request to a remote teacher
      const byState = new Array(segments * states).fill(8);
      expect(onePass.calls).toEqual(byState);
      expect(twoPass.calls).toEqual(extra.numDecayIters > 0 ? byState : new Array(segments).fill(8 * states));
      // equal up to float32 rounding (the tape's gradient sums may add in another order)
      onePass.losses.forEach((l, i) => expect(l).toBeCloseTo(twoPass.losses[i]!, 5));
      const worst = Math.max(
        ...onePass.weights.flatMap((w, i) => w.map((x, j) => Math.abs(x - twoPass.weights[i]![j]!))),
      );
      expect(worst).toBeLessThan(1e-5);
    }
  });

  it('falls back to the two-phase iteration when the teacher cannot answer synchronously after all', async () => {
    // e.g. a tfjs graph model with dynamic ops: its velocitySync throws SyncUnavailableError
    const run = async (t: Teacher) => {
      const start = tf.memory().numTensors;
      const student = mlpGMStudent(2, 3, 16, createRandom(4));
      const trainer = createPiIDTrainer({
        student,
        family: gm,
        teacher: t,
        data,
        batchSize: 8,
        numInferenceSteps: 2,
        familyOptions: { dropout: 0.1 },
        seed: 3,
      });
      const losses = [(await trainer.trainStep()).loss];
      // the step that fell back leaves what the two-phase step leaves (compared below)
      const firstStepTensors = tf.memory().numTensors - start;
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) losses.push((await trainer.trainStep()).loss);
      expect(tf.memory().numTensors).toBe(before);
      const weights = student.variables.map((v) => Array.from(v.dataSync()));
      trainer.dispose();
      student.variables.forEach((v) => v.dispose());
      return { losses, weights, firstStepTensors };
    };
    let syncCalls = 0;
    const dynamic: Teacher = {
      metadata: {},
      velocitySync: () => {
        syncCalls += 1;
        throw new SyncUnavailableError('only asynchronously');
      },
      velocity: async (x, s) => flow.velocity(x, s),
    };
    const fallback = await run(dynamic);
    expect(syncCalls).toBe(1);
    // the same random draws as a teacher that never offered velocitySync
    expect(fallback).toEqual(await run(teacher));
  });

  it('says so when the loss does not reach the student’s variables, and leaks nothing', async () => {
    const student = mlpGMStudent(2, 3, 16, createRandom(4));
    const predict = student.predict.bind(student);
    // parameters computed from the variables but detached from them: no gradient can reach the variables
    student.predict = (...args) => {
      const params = predict(...args);
      const detached = detachParams(params);
      disposeParams(params);
      return detached;
    };
    for (const t of [teacher, flowTeacherSync(flow)]) {
      const trainer = createPiIDTrainer({
        student,
        family: gm,
        teacher: t,
        data,
        batchSize: 8,
        numInferenceSteps: 2,
      });
      await expectFailedStepLeavesNothing(trainer, /does not depend on any of the student's variables/);
      trainer.dispose();
    }
    student.variables.forEach((v) => v.dispose());
  });

  it('a failure after the rollouts of a data-free chain leaks nothing (the kept x_dst included)', async () => {
    const student = mlpGMStudent(2, 3, 16, createRandom(4));
    let creates = 0;
    // the loss policy of the second step's first segment fails (creates: rollout policy, loss policy, ×2 steps)
    const family = {
      ...gm,
      create: (...args: Parameters<typeof gm.create>) => {
        creates += 1;
        if (creates === 6) throw new Error('bad parameters');
        return gm.create(...args);
      },
    };
    const trainer = createPiIDTrainer({
      student,
      family,
      teacher: flowTeacherSync(flow),
      data: undefined,
      sampleShape: [2],
      batchSize: 8,
      numInferenceSteps: 2,
    });
    await trainer.trainStep();
    await expectFailedStepLeavesNothing(trainer, 'bad parameters');
    trainer.dispose();
    student.variables.forEach((v) => v.dispose());
  });

  it('a synchronous teacher that throws fails the step with its error and leaks nothing', async () => {
    const student = mlpGMStudent(2, 3, 16, createRandom(4));
    let calls = 0;
    const failing = {
      metadata: {},
      velocitySync: (x: tf.Tensor, s: number | tf.Tensor1D) => {
        calls += 1;
        if (calls === 3) throw new Error('teacher went away');
        return flow.velocity(x, s);
      },
      velocity: async () => {
        throw new Error('not used');
      },
    };
    const trainer = createPiIDTrainer({
      student,
      family: gm,
      teacher: failing,
      data,
      batchSize: 8,
      numInferenceSteps: 2,
    });
    await trainer.trainStep();
    await expectFailedStepLeavesNothing(trainer, 'teacher went away');
    trainer.dispose();
    student.variables.forEach((v) => v.dispose());
  });

  it('skips non-finite losses, reports them, and aborts after the bound', async () => {
    let calls = 0;
    const broken = {
      metadata: {},
      velocity: async (x: tf.Tensor, s: number | tf.Tensor1D) => {
        calls += 1;
        const u = flow.velocity(x, s);
        if (calls > 2) {
          const bad = tf.mul(u, Number.NaN);
          u.dispose();
          return bad;
        }
        return u;
      },
    };
    const student = mlpGMStudent(2, 2, 8, createRandom(6));
    const seen: boolean[] = [];
    const trainer = createPiIDTrainer({
      student,
      family: gm,
      teacher: broken,
      data,
      batchSize: 4,
      numInferenceSteps: 1,
      numIntermediateStates: 1,
      substeps: 4,
      maxNonFiniteSteps: 2,
      onStep: (m) => seen.push(m.skipped),
    });
    await trainer.trainStep();
    await trainer.trainStep();
    const weights = Array.from(student.variables[0]!.dataSync());
    await trainer.trainStep();
    await trainer.trainStep();
    await expect(trainer.trainStep()).rejects.toThrow(NonFiniteLossError);
    expect(seen).toEqual([false, false, true, true]);
    expect(trainer.step).toBe(2);
    expect(Array.from(student.variables[0]!.dataSync())).toEqual(weights);
    trainer.dispose();
  });

  it("applies the family's training options through the family (its defaults when none are given)", async () => {
    const seen: { values: unknown; random: unknown }[] = [];
    const created: unknown[] = [];
    const family = {
      ...gm,
      training: {
        options: gm.training!.options,
        policyOptions: (values: Record<string, unknown>, context: { random: unknown }) => {
          seen.push({ values, random: context.random });
          return gm.training!.policyOptions(values as never, context as never);
        },
      },
      create: (...args: Parameters<typeof gm.create>) => {
        created.push(args[3]);
        return gm.create(...args);
      },
    };
    for (const [familyOptions, dropout] of [
      [undefined, 0.05],
      [{ dropout: 0.2 }, 0.2],
      [{ dropout: 0 }, undefined],
    ] as const) {
      seen.length = 0;
      created.length = 0;
      const student = mlpGMStudent(2, 2, 8, createRandom(7));
      const trainer = createPiIDTrainer({
        student,
        family: family as typeof gm,
        teacher,
        data,
        batchSize: 4,
        numInferenceSteps: 2,
        substeps: 8,
        ...(familyOptions ? { familyOptions } : {}),
      });
      await trainer.trainStep();
      expect(seen).toHaveLength(1);
      expect(seen[0]!.values).toEqual({ dropout: dropout ?? 0 });
      expect(seen[0]!.random).toHaveProperty('uniform');
      // the rollout policy gets the dropout (and the trainer's random); the differentiated one does not
      expect((created[0] as { dropout?: number }).dropout).toBe(dropout);
      expect((created[1] as { dropout?: number }).dropout).toBeUndefined();
      trainer.dispose();
    }
  });

  it('validates its options', () => {
    const student = mlpGMStudent(2, 2, 8, createRandom(7));
    const base = { student, family: gm, teacher, data, batchSize: 4, numInferenceSteps: 2 };
    expect(() => createPiIDTrainer({ ...base, batchSize: 0 })).toThrow(InvalidArgumentError);
    expect(() => createPiIDTrainer({ ...base, numInferenceSteps: 0 })).toThrow(/numInferenceSteps/);
    expect(() => createPiIDTrainer({ ...base, familyOptions: { dropout: 1 } })).toThrow(
      /familyOptions.dropout/,
    );
    expect(() => createPiIDTrainer({ ...base, familyOptions: { drop: 0.1 } })).toThrow(
      /familyOptions.drop.*dropout/,
    );
    expect(() => createPiIDTrainer({ ...base, data: undefined })).toThrow(/sampleShape/);
    expect(() => createPiIDTrainer({ ...base, family: { ...gm, name: 'dx' } as never })).toThrow(/family/);
    expect(() => createPiIDTrainer({ ...base, checkpoint: { dir: '' } })).toThrow(/checkpoint.dir/);
  });
});

describe('π-ID trainer processes', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = path.join(here, '__fixtures__', 'train-run.ts');
  const tsx = createRequire(import.meta.url).resolve('tsx');

  function run(dir: string, total: number, every: number, killAfterStep?: number) {
    return new Promise<{ lines: string[]; signal: NodeJS.Signals | null; code: number | null }>(
      (resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--import', tsx, '--conditions=@piflow/source', script, dir, String(total), String(every)],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        const lines: string[] = [];
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.stdout.on('data', (d: Buffer) => {
          for (const line of d.toString().split('\n').filter(Boolean)) {
            lines.push(line);
            if (killAfterStep !== undefined && line === `step ${killAfterStep}`) child.kill('SIGKILL');
          }
        });
        child.on('error', reject);
        child.on('close', (code, signal) => {
          if (code && code !== 0) reject(new Error(`training process failed (${code}): ${stderr}`));
          else resolve({ lines, signal, code });
        });
      },
    );
  }

  it('a run killed with SIGKILL resumes from its last checkpoint and ends exactly like an uninterrupted run', async () => {
    const interrupted = await mkdtemp(path.join(tmpdir(), 'piflow-kill-'));
    const first = await run(interrupted, 30, 5, 13);
    expect(first.signal).toBe('SIGKILL');
    expect(first.lines).not.toContain('done');
    const second = await run(interrupted, 30, 5);
    expect(second.lines[0]).toBe('resumed 10');
    const straight = await run(await mkdtemp(path.join(tmpdir(), 'piflow-straight-')), 30, 5);
    const done = second.lines.at(-1)!;
    expect(done).toMatch(/^done 30 /);
    expect(done).toBe(straight.lines.at(-1));
    expect((await readdir(interrupted)).every((n) => !n.includes('.tmp-'))).toBe(true);
  }, 180_000);

  it('a corrupted newest checkpoint is refused with a warning and the previous one is used', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-corrupt-'));
    await run(dir, 10, 5);
    const newest = path.join(dir, 'ckpt-00000010.piflow');
    const bytes = await readFile(newest);
    bytes[bytes.length - 1]! ^= 0x55;
    await writeFile(newest, bytes);
    const resumed = await run(dir, 12, 5);
    expect(resumed.lines[0]).toMatch(/^warning Skipping checkpoint .*ckpt-00000010.piflow: .*checksum/);
    expect(resumed.lines[1]).toBe('resumed 5');
    expect(resumed.lines.at(-1)).toMatch(/^done 12 /);
  }, 120_000);
});
