import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRandom, InvalidArgumentError, sample, sampleTeacher } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import { createSingleX0Student, dx } from '@piflow/policy-dx';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fluxReferenceVelocity, fluxReferenceWeights } from '../__fixtures__/flux-reference';
import { withClassifierFreeGuidance } from '../guidance';
import { fileSystemIO } from '../node-file-system-io';
import { describeTeacherContract } from '../testing';
import { createLatentTransformerTeacher, type LatentTransformerTeacher } from './latent-transformer-teacher';
import { imagePositionIds, packLatents, textPositionIds } from './packing';
import { flux1 } from './presets';
import { createSyntheticLatentTask, tinyFluxFixtureConfig } from './synthetic-latents';
import { TinyFluxTransformer } from './tiny-flux-transformer';
import { trainLatentTransformer } from './train-latent-transformer';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '../__fixtures__/tiny-flux');
const task = createSyntheticLatentTask();
const sampleShape = [task.height, task.width, task.channels] as const;

function packedInputs(batch: number, seed: number) {
  const r = createRandom(seed);
  const latents = r.normalTensor([batch, 8, 8, 16]);
  const condition = task.condition(Array.from({ length: batch }, (_, i) => i % 4));
  return {
    hiddenStates: packLatents(latents),
    timestep: tf.tensor1d(Array.from({ length: batch }, () => r.uniform())),
    guidance: tf.fill([batch], 3.5) as tf.Tensor1D,
    encoderHiddenStates: condition.textEmbeddings as tf.Tensor3D,
    pooledProjections: condition.pooledEmbeddings as tf.Tensor2D,
    imageIds: imagePositionIds(8, 8),
    textIds: textPositionIds(4),
    latents,
  };
}

describe('TinyFluxTransformer', () => {
  beforeAll(() => useBackend('wasm'));

  it('maps packed tokens [B, L, 64] to [B, L, 64] and validates its inputs', () => {
    const model = new TinyFluxTransformer(tinyFluxFixtureConfig);
    const inputs = packedInputs(2, 1);
    const out = model.predict(inputs);
    expect(out.shape).toEqual([2, 16, 64]);
    expect(() => model.predict({ ...inputs, hiddenStates: tf.zeros([2, 16, 32]) as tf.Tensor3D })).toThrow(
      /hiddenStates/,
    );
    expect(() => model.predict({ ...inputs, guidance: undefined })).toThrow(/guidance/);
    expect(() => new TinyFluxTransformer({ hiddenDim: 30, numHeads: 4 })).toThrow(InvalidArgumentError);
    expect(() => new TinyFluxTransformer({ ropeAxesDim: [4, 4, 4] })).toThrow(/ropeAxesDim/);
    // the output depends on the text, the pooled embedding, the timestep and the guidance value
    for (const change of [
      { encoderHiddenStates: tf.zerosLike(inputs.encoderHiddenStates) as tf.Tensor3D },
      { pooledProjections: tf.zerosLike(inputs.pooledProjections) as tf.Tensor2D },
      { timestep: tf.fill([2], 0.9) as tf.Tensor1D },
      { guidance: tf.fill([2], 1) as tf.Tensor1D },
    ]) {
      const other = model.predict({ ...inputs, ...change });
      expect(maxAbsDifference(other.dataSync(), out.dataSync())).toBeGreaterThan(1e-4);
      tf.dispose([other, ...Object.values(change)]);
    }
    tf.dispose([out, ...Object.values(inputs)]);
    model.dispose();
  });

  it('lowers its flow-matching loss when trained, and saves and loads exactly', async () => {
    const model = new TinyFluxTransformer(tinyFluxFixtureConfig);
    const before = tf.memory().numTensors;
    const losses = await trainLatentTransformer({
      model,
      steps: 12,
      random: createRandom(4),
      nextBatch: (_, r) => task.batch(8, r, 0.1),
    });
    expect(tf.memory().numTensors).toBe(before);
    const early = (losses[0]! + losses[1]!) / 2;
    const late = losses.slice(-4).reduce((a, b) => a + b) / 4;
    expect(late).toBeLessThan(0.8 * early);

    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-tiny-flux-'));
    try {
      await model.save(fileSystemIO(dir));
      const loaded = await TinyFluxTransformer.load(fileSystemIO(dir));
      const inputs = packedInputs(3, 2);
      const a = model.predict(inputs);
      const b = loaded.predict(inputs);
      expect(maxAbsDifference(a.dataSync(), b.dataSync())).toBe(0);
      tf.dispose([a, b, ...Object.values(inputs)]);
      loaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
      model.dispose();
    }
  });
});

describe('π-Flow sampling through the FLUX-style adapter on the trained FLUX-shaped transformer', () => {
  let teacher: LatentTransformerTeacher;
  const batch = 16;
  const prompts = Array.from({ length: batch }, (_, i) => i % task.numPrompts);
  let noise: tf.Tensor;
  let condition: Record<string, tf.Tensor>;
  let noiseDistance: number;

  beforeAll(async () => {
    await useBackend('wasm');
    const model = await TinyFluxTransformer.load(fileSystemIO(fixture));
    teacher = createLatentTransformerTeacher({ model, preset: flux1, sampleShape: [...sampleShape] });
    noise = createRandom(77).normalTensor([batch, ...sampleShape]);
    condition = task.condition(prompts) as Record<string, tf.Tensor>;
    noiseDistance = mean(task.nearestPattern(noise.dataSync()).distance);
  });
  afterAll(() => {
    teacher?.dispose?.();
    tf.dispose([noise, ...Object.values(condition ?? {})]);
  });

  const mean = (values: ArrayLike<number>) => Array.from(values).reduce((a, b) => a + b, 0) / values.length;
  const evaluate = (x: tf.Tensor) => {
    const { prompt, distance } = task.nearestPattern(x.dataSync());
    return { correct: prompt.filter((p, i) => p === prompts[i]).length, distance: mean(distance) };
  };

  it('declares FLUX.1 metadata', () => {
    expect(teacher.metadata).toMatchObject({
      layout: 'image',
      sampleShape: [8, 8, 16],
      shift: 3.2,
      guidance: 'embedded',
      conditionNames: ['textEmbeddings', 'pooledEmbeddings'],
    });
  });

  it("generates each prompt's latents with the teacher's own 8-step sampler", async () => {
    const x = await sampleTeacher(teacher, noise, { numInferenceSteps: 8, condition });
    const { correct, distance } = evaluate(x);
    x.dispose();
    expect(correct).toBe(batch);
    // the small teacher is trained for 1 500 steps only (final loss ≈ 0.6): its samples sit ≈ 0.31× as far
    // from their prompt's pattern as the noise does; 0.4× leaves room for backend rounding
    expect(distance).toBeLessThan(0.4 * noiseDistance);
  });

  it('runs a 4-step π-Flow DX sampling run (single-x0 student, shift 3.2, final step ½) through it', () => {
    const student = createSingleX0Student(teacher);
    const steps: number[] = [];
    const before = tf.memory().numTensors;
    const x = sample(student, dx, noise, {
      numInferenceSteps: 4,
      shift: 3.2,
      finalStepSizeScale: 0.5,
      condition,
      onStep: ({ sigmaSrc }) => steps.push(sigmaSrc),
    });
    expect(tf.memory().numTensors - before).toBe(1);
    // the FLUX 4-step schedule of the reference (fs = 0.5, shift 3.2)
    expect(steps.map((s) => Number(s.toFixed(6)))).toEqual([1, 0.888889, 0.705882, 0.347826]);
    const { correct, distance } = evaluate(x);
    x.dispose();
    expect(correct).toBe(batch);
    expect(distance).toBeLessThan(0.4 * noiseDistance);
  });

  it('samples with classifier-free guidance against the null prompt it was trained with (10% dropout)', async () => {
    const unconditional = task.nullCondition(1);
    const guided = withClassifierFreeGuidance(teacher, { guidanceScale: 2, unconditional });
    const x = await sampleTeacher(guided, noise, { numInferenceSteps: 8, condition });
    tf.dispose(Object.values(unconditional));
    const { correct, distance } = evaluate(x);
    x.dispose();
    expect(correct).toBe(batch);
    expect(distance).toBeLessThan(0.5 * noiseDistance);
  });
});

describeTeacherContract('FLUX-style adapter around the trained FLUX-shaped transformer', {
  metadata: {
    layout: 'image',
    sampleShape: [8, 8, 16],
    shift: 3.2,
    guidance: 'embedded',
    conditionNames: ['textEmbeddings', 'pooledEmbeddings'],
    description: 'flux1-style latent transformer (embedded guidance 3.5)',
  },
  backends: ['wasm'],
  create: async () =>
    createLatentTransformerTeacher({
      model: await TinyFluxTransformer.load(fileSystemIO(fixture)),
      preset: flux1,
      sampleShape: [...sampleShape],
    }),
  makeInputs: (batch, r) => ({
    x: r.normalTensor([batch, ...sampleShape]),
    sigma: Array.from({ length: batch }, () => 0.05 + 0.9 * r.uniform()),
    condition: task.condition(Array.from({ length: batch }, (_, i) => i % task.numPrompts)),
  }),
  // the float64 reference of __fixtures__/flux-reference.ts on the same trained weights
  reference: async ({ x, sigma, condition }) => {
    const model = await TinyFluxTransformer.load(fileSystemIO(fixture));
    const weights = await fluxReferenceWeights(model);
    model.dispose();
    const text = condition!.textEmbeddings!;
    const pooled = condition!.pooledEmbeddings!;
    const [B, T, Dt] = text.shape as [number, number, number];
    const Dp = pooled.shape[1]!;
    const size = x.size / B;
    const [xs, ts, ps] = [x.dataSync(), text.dataSync(), pooled.dataSync()];
    const out = new Float64Array(x.size);
    for (let b = 0; b < B; b++) {
      const textRows = {
        rows: T,
        cols: Dt,
        data: Float64Array.from(ts.subarray(b * T * Dt, (b + 1) * T * Dt)),
      };
      out.set(
        fluxReferenceVelocity(
          weights,
          Float64Array.from(xs.subarray(b * size, (b + 1) * size)),
          sampleShape,
          sigma[b]!,
          textRows,
          Float64Array.from(ps.subarray(b * Dp, (b + 1) * Dp)),
          flux1.defaultGuidance,
        ),
        b * size,
      );
    }
    return out;
  },
});
