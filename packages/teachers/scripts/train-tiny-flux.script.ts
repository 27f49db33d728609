// Trains the FLUX-shaped tiny transformer on the synthetic latent task by flow matching and writes it to
// src/__fixtures__/tiny-flux (the teacher the FLUX-adapter tests sample through).
// Run: pnpm --filter @piflow/teachers train:tiny-flux   (STEPS=… to change the length)
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRandom } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import { it } from 'vitest';
import { fileSystemIO, TinyFluxTransformer } from '../src';
import { createSyntheticLatentTask, tinyFluxFixtureConfig, trainLatentTransformer } from '../src/training';

it('trains the tiny FLUX-shaped teacher', async () => {
  const steps = Number(process.env.STEPS ?? 1500);
  await useBackend('wasm');
  const task = createSyntheticLatentTask();
  const model = new TinyFluxTransformer(tinyFluxFixtureConfig);
  const random = createRandom(5);
  const start = performance.now();
  await trainLatentTransformer({
    model,
    steps,
    random,
    nextBatch: (_, r) => task.batch(8, r, 0.1),
    onStep: (step, loss) => {
      if (step % 100 === 0 || step === steps - 1) {
        console.log(
          `step ${step} loss ${loss.toFixed(4)} (${((performance.now() - start) / 1000).toFixed(1)} s)`,
        );
      }
    },
  });
  const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/__fixtures__/tiny-flux');
  await model.save(fileSystemIO(out));
  console.log(`saved to ${out}`);
  model.dispose();
});
