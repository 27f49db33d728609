import { assertNumber, type Condition, type Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { TinyFluxTransformerConfig } from './tiny-flux-transformer';
import type { LatentTrainingBatch } from './train-latent-transformer';

/** The configuration of the tiny FLUX-shaped teacher trained on the default synthetic task. */
export const tinyFluxFixtureConfig: TinyFluxTransformerConfig = Object.freeze({
  tokenDim: 64,
  textEmbeddingDim: 32,
  pooledEmbeddingDim: 16,
  guidanceEmbedding: true,
  hiddenDim: 32,
  numHeads: 2,
  depth: 2,
  ropeAxesDim: [4, 6, 6] as const,
  seed: 3,
});

export interface SyntheticLatentTaskOptions {
  /** Latent height and width (multiples of 2). Default 8 × 8. */
  height?: number;
  width?: number;
  /** Latent channels (default 16, as FLUX / Qwen-Image). */
  channels?: number;
  /** Number of "prompts" (classes), each with its own latent pattern and text embeddings. Default 4. */
  numPrompts?: number;
  /** Text tokens per prompt and their width. Default 4 × 32. */
  textTokens?: number;
  textEmbeddingDim?: number;
  /** Pooled embedding width (0: none). Default 16. */
  pooledEmbeddingDim?: number;
  /** Per-sample deviation from the prompt's pattern. Default 0.1. */
  noiseStd?: number;
  seed?: number;
}

/**
 * A synthetic text-to-latent task with known answers: prompt k has a latent pattern P_k [H, W, C] (a ±1
 * colour per channel plus a smooth spatial wave) and
 * fixed random text (and pooled) embeddings; its data are P_k + noiseStd·N(0, I). A model that learned the
 * task maps noise and prompt k's embeddings to latents near P_k.
 */
export interface SyntheticLatentTask {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly numPrompts: number;
  /** Patterns, prompt-major [numPrompts · H · W · C]. */
  readonly patterns: Float32Array;
  /** Conditioning for the given prompts (textEmbeddings, pooledEmbeddings if any); dropped prompts (−1) get zeros. */
  condition(prompts: ArrayLike<number>): Condition;
  /** The null (empty-prompt) conditioning for a batch: zeros. */
  nullCondition(batch: number): Condition;
  /** A training batch of random prompts with probability `dropout` of the null conditioning. */
  batch(size: number, random: Random, dropout?: number): LatentTrainingBatch;
  /** Index of the closest pattern (mean squared distance) and that distance, per sample of x [B, H, W, C]. */
  nearestPattern(x: ArrayLike<number>): { prompt: Int32Array; distance: Float64Array };
}

export function createSyntheticLatentTask(options: SyntheticLatentTaskOptions = {}): SyntheticLatentTask {
  const {
    height = 8,
    width = 8,
    channels = 16,
    numPrompts = 4,
    textTokens = 4,
    textEmbeddingDim = 32,
    pooledEmbeddingDim = 16,
    noiseStd = 0.1,
    seed = 1,
  } = options;
  for (const [name, value] of Object.entries({
    height,
    width,
    channels,
    numPrompts,
    textTokens,
    textEmbeddingDim,
  })) {
    assertNumber(name, value, { min: 1, integer: true });
  }
  assertNumber('pooledEmbeddingDim', pooledEmbeddingDim, { min: 0, integer: true });
  assertNumber('noiseStd', noiseStd, { min: 0 });
  const size = height * width * channels;
  // fixed per-prompt values from a seeded generator
  let state = seed >>> 0 || 1;
  const gaussian = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const u1 = (state + 1) / 4294967297;
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const u2 = state / 4294967296;
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
  // P_k[h, w, c] = a_k[c] + 0.5·cos(ω_k·h + ν_k·w + c): a prompt-specific colour plus a smooth spatial wave
  const patterns = new Float32Array(numPrompts * size);
  for (let k = 0; k < numPrompts; k++) {
    const colour = Array.from({ length: channels }, () => (gaussian() > 0 ? 1 : -1));
    const omega = 0.4 + 0.3 * k;
    const nu = 0.9 - 0.2 * k;
    for (let h = 0; h < height; h++) {
      for (let w = 0; w < width; w++) {
        for (let c = 0; c < channels; c++) {
          patterns[((k * height + h) * width + w) * channels + c] =
            colour[c]! + 0.5 * Math.cos(omega * h + nu * w + c);
        }
      }
    }
  }
  const text = Float32Array.from({ length: numPrompts * textTokens * textEmbeddingDim }, gaussian);
  const pooled = Float32Array.from({ length: numPrompts * pooledEmbeddingDim }, gaussian);

  const condition = (prompts: ArrayLike<number>): Condition => {
    const B = prompts.length;
    const t = new Float32Array(B * textTokens * textEmbeddingDim);
    const p = new Float32Array(B * pooledEmbeddingDim);
    for (let b = 0; b < B; b++) {
      const k = prompts[b]!;
      if (k < 0) continue;
      t.set(
        text.subarray(k * textTokens * textEmbeddingDim, (k + 1) * textTokens * textEmbeddingDim),
        b * textTokens * textEmbeddingDim,
      );
      p.set(pooled.subarray(k * pooledEmbeddingDim, (k + 1) * pooledEmbeddingDim), b * pooledEmbeddingDim);
    }
    return {
      textEmbeddings: tf.tensor3d(t, [B, textTokens, textEmbeddingDim]),
      ...(pooledEmbeddingDim > 0 ? { pooledEmbeddings: tf.tensor2d(p, [B, pooledEmbeddingDim]) } : {}),
    };
  };

  return {
    height,
    width,
    channels,
    numPrompts,
    patterns,
    condition,
    nullCondition: (batch) => condition(new Array<number>(batch).fill(-1)),
    batch(sizeB, random, dropout = 0) {
      const prompts = Array.from({ length: sizeB }, () => random.integer(numPrompts));
      const latents = new Float32Array(sizeB * size);
      for (let b = 0; b < sizeB; b++) {
        for (let i = 0; i < size; i++)
          latents[b * size + i] = patterns[prompts[b]! * size + i]! + noiseStd * random.normal();
      }
      const shown = prompts.map((k) => (random.uniform() < dropout ? -1 : k));
      return { latents: tf.tensor4d(latents, [sizeB, height, width, channels]), condition: condition(shown) };
    },
    nearestPattern(x) {
      const B = x.length / size;
      const prompt = new Int32Array(B);
      const distance = new Float64Array(B);
      for (let b = 0; b < B; b++) {
        let best = Infinity;
        for (let k = 0; k < numPrompts; k++) {
          let d = 0;
          for (let i = 0; i < size; i++) d += (x[b * size + i]! - patterns[k * size + i]!) ** 2;
          d /= size;
          if (d < best) {
            best = d;
            prompt[b] = k;
          }
        }
        distance[b] = best;
      }
      return { prompt, distance };
    },
  };
}
