import { createRandom } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { fluxReferenceVelocity, fluxReferenceWeights } from '../__fixtures__/flux-reference';
import { createLatentTransformerTeacher } from './latent-transformer-teacher';
import { flux1 } from './presets';
import { TinyFluxTransformer } from './tiny-flux-transformer';

describe('FLUX-style adapter against a float64 reference written from the FLUX.1 description', () => {
  beforeAll(() => useBackend('cpu'));

  it('packing, 3-axis RoPE, joint attention, modulation, unpacking: equal to 1e-4', async () => {
    // rectangular latents (rows ≠ columns) so a swapped row/column RoPE axis or packing order shows
    const shape = [4, 6, 16] as const;
    const model = new TinyFluxTransformer({
      depth: 2,
      hiddenDim: 48,
      numHeads: 2,
      ropeAxesDim: [4, 10, 10],
      seed: 5,
    });
    const teacher = createLatentTransformerTeacher({ model, preset: flux1, sampleShape: [...shape] });
    const weights = await fluxReferenceWeights(model);
    const random = createRandom(7);
    const B = 2;
    const T = 3;
    const x = random.normalTensor([B, ...shape]);
    const text = tf.mul(random.normalTensor([B, T, model.textEmbeddingDim]), 0.5);
    const pooled = random.normalTensor([B, model.pooledEmbeddingDim!]);
    const sigma = [0.83, 0.31];
    const u = await teacher.velocity(x, tf.tensor1d(sigma), {
      textEmbeddings: text,
      pooledEmbeddings: pooled,
    });
    const xs = x.dataSync();
    const ts = text.dataSync();
    const ps = pooled.dataSync();
    const size = shape[0] * shape[1] * shape[2];
    const reference = new Float64Array(B * size);
    for (let b = 0; b < B; b++) {
      reference.set(
        fluxReferenceVelocity(
          weights,
          Float64Array.from(xs.subarray(b * size, (b + 1) * size)),
          shape,
          sigma[b]!,
          {
            rows: T,
            cols: model.textEmbeddingDim,
            data: Float64Array.from(
              ts.subarray(b * T * model.textEmbeddingDim, (b + 1) * T * model.textEmbeddingDim),
            ),
          },
          Float64Array.from(ps.subarray(b * model.pooledEmbeddingDim!, (b + 1) * model.pooledEmbeddingDim!)),
          flux1.defaultGuidance,
        ),
        b * size,
      );
    }
    const scale = Math.max(...reference.map(Math.abs));
    expect(scale).toBeGreaterThan(0.1); // a velocity worth comparing
    expect(maxAbsDifference(u.dataSync(), reference)).toBeLessThan(1e-4 * Math.max(1, scale));
    tf.dispose([x, text, pooled, u]);
    model.dispose();
  });
});
