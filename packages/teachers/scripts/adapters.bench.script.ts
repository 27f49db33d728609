// Teacher-adapter benchmark (wasm backend, one run, ratios measured side by side):
// 1. FLUX-style adapter overhead: teacher.velocity (pack + ids + unpack) vs the bare model.predict on packed tokens.
// 2. Few-step π-Flow through the adapter (single-x0 DX student, 4 NFE) vs the teacher's Euler sampler (8 and 32
//    steps): wall time and distance of the samples to their prompt's pattern (synthetic task, 16 samples).
// Run: pnpm --filter @piflow/teachers bench
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRandom, sample, sampleTeacher } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import { createSingleX0Student, dx } from '@piflow/policy-dx';
import * as tf from '@tensorflow/tfjs-core';
import { it } from 'vitest';
import {
  createLatentTransformerTeacher,
  fileSystemIO,
  flux1,
  imagePositionIds,
  packLatents,
  TinyFluxTransformer,
  textPositionIds,
} from '../src';
import { createSyntheticLatentTask } from '../src/training';

const time = async (fn: () => unknown | Promise<unknown>, repeats: number) => {
  await fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await fn();
  return (performance.now() - start) / repeats;
};

it('benchmarks the teacher adapters', async () => {
  await useBackend('wasm');
  const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/__fixtures__/tiny-flux');
  const model = await TinyFluxTransformer.load(fileSystemIO(fixture));
  const task = createSyntheticLatentTask();
  const teacher = createLatentTransformerTeacher({ model, preset: flux1, sampleShape: [8, 8, 16] });
  const batch = 16;
  const prompts = Array.from({ length: batch }, (_, i) => i % 4);
  const condition = task.condition(prompts);
  const noise = createRandom(77).normalTensor([batch, 8, 8, 16]);

  const tokens = packLatents(noise);
  const inputs = {
    hiddenStates: tokens,
    timestep: tf.fill([batch], 0.5) as tf.Tensor1D,
    guidance: tf.fill([batch], 3.5) as tf.Tensor1D,
    encoderHiddenStates: condition.textEmbeddings as tf.Tensor3D,
    pooledProjections: condition.pooledEmbeddings as tf.Tensor2D,
    imageIds: imagePositionIds(8, 8),
    textIds: textPositionIds(4),
  };
  // alternate the two in rounds so machine load hits both alike; report medians
  const bareRounds: number[] = [];
  const adaptedRounds: number[] = [];
  const measureBare = async () => bareRounds.push(await time(() => tf.dispose(model.predict(inputs)), 5));
  const measureAdapted = async () =>
    adaptedRounds.push(await time(async () => tf.dispose(await teacher.velocity(noise, 0.5, condition)), 5));
  for (let round = 0; round < 8; round++) {
    // swap the order every round so neither side always runs first
    if (round % 2 === 0) {
      await measureBare();
      await measureAdapted();
    } else {
      await measureAdapted();
      await measureBare();
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const bare = median(bareRounds);
  const adapted = median(adaptedRounds);
  console.log(
    `| FLUX-style adapter velocity, B=${batch}, 8×8×16 latents | ${adapted.toFixed(2)} ms | bare model.predict ${bare.toFixed(2)} ms | overhead ×${(adapted / bare).toFixed(3)} |`,
  );

  const mean = (v: ArrayLike<number>) => Array.from(v).reduce((a, b) => a + b, 0) / v.length;
  const report = (name: string, ms: number, x: tf.Tensor) => {
    const { prompt, distance } = task.nearestPattern(x.dataSync());
    const correct = prompt.filter((p, i) => p === prompts[i]).length;
    console.log(`| ${name} | ${ms.toFixed(0)} ms | ${correct}/${batch} | ${mean(distance).toFixed(3)} |`);
    x.dispose();
  };
  console.log(
    `noise distance to patterns: ${mean(task.nearestPattern(noise.dataSync()).distance).toFixed(3)}`,
  );
  for (const steps of [32, 8]) {
    const start = performance.now();
    const x = await sampleTeacher(teacher, noise, { numInferenceSteps: steps, condition });
    report(`teacher Euler, ${steps} steps`, performance.now() - start, x);
  }
  for (const nfe of [4, 2]) {
    const start = performance.now();
    const x = sample(createSingleX0Student(teacher), dx, noise, {
      numInferenceSteps: nfe,
      shift: 3.2,
      finalStepSizeScale: 0.5,
      condition,
    });
    report(`π-Flow DX (N = 1) from the teacher's x0, ${nfe} NFE`, performance.now() - start, x);
  }
  tf.dispose([
    noise,
    tokens,
    ...Object.values(condition),
    inputs.timestep,
    inputs.guidance,
    inputs.imageIds,
    inputs.textIds,
  ]);
  teacher.dispose?.();
});
