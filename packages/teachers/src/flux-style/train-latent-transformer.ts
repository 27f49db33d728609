import {
  AdamW,
  assertNumber,
  type Condition,
  InvalidArgumentError,
  type Random,
  registerGradients,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { imagePositionIds, packLatents, textPositionIds } from './packing';
import type { LatentTransformerPreset } from './presets';
import { flux1 } from './presets';
import type { TinyFluxTransformer } from './tiny-flux-transformer';

export interface LatentTrainingBatch {
  /** Clean latents x0 [B, H, W, C]. */
  latents: tf.Tensor4D;
  /** `textEmbeddings` [B, T, D_text] and, if the model takes one, `pooledEmbeddings` [B, D_pooled]. */
  condition: Condition;
}

export interface TrainLatentTransformerOptions {
  model: TinyFluxTransformer;
  /** Returns a fresh batch for each step; its tensors are disposed after the step. */
  nextBatch: (step: number, random: Random) => LatentTrainingBatch;
  steps: number;
  random: Random;
  learningRate?: number;
  preset?: LatentTransformerPreset;
  /** Embedded guidance values seen in training are drawn uniformly from this range (default [1, 5]). */
  guidanceRange?: readonly [number, number];
  onStep?: (step: number, loss: number) => void;
}

/**
 * Rectified-flow (flow matching) training of a FLUX-shaped transformer: σ ~ U(0, 1), x_σ = (1 − σ)·x0 + σ·ε,
 * loss = mean ‖model(pack(x_σ), σ, …) − pack(ε − x0)‖² with the core's AdamW (β = 0.9, 0.99; no decay). Resolves to the loss of every step.
 * Registers tfjs's gradient functions first (`registerGradients` from @piflow/core: needs `@tensorflow/tfjs`).
 */
export async function trainLatentTransformer(options: TrainLatentTransformerOptions): Promise<number[]> {
  const {
    model,
    nextBatch,
    steps,
    random,
    learningRate = 3e-3,
    preset = flux1,
    guidanceRange = [1, 5],
  } = options;
  assertNumber('steps', steps, { min: 1, integer: true });
  assertNumber('learningRate', learningRate, { min: 0, minExclusive: true });
  if (typeof nextBatch !== 'function') {
    throw new InvalidArgumentError('nextBatch', 'a function (step, random) => batch', typeof nextBatch);
  }
  await registerGradients();
  const optimizer = new AdamW(model.variables, { learningRate, beta1: 0.9, beta2: 0.99 });
  const losses: number[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      const { latents, condition } = nextBatch(step, random);
      const [B, H, W] = latents.shape;
      const sigmas = Float32Array.from({ length: B }, () => random.uniform());
      const noise = random.fillNormal(new Float32Array(latents.size));
      const guidance = Float32Array.from(
        { length: B },
        () => guidanceRange[0] + (guidanceRange[1] - guidanceRange[0]) * random.uniform(),
      );
      const text = condition.textEmbeddings as tf.Tensor3D;
      const inputs = tf.tidy(() => {
        const s = tf.tensor4d(sigmas, [B, 1, 1, 1]);
        const eps = tf.tensor(noise, latents.shape);
        const xt = tf.add(tf.mul(tf.sub(1, s), latents), tf.mul(s, eps));
        return {
          tokens: packLatents(xt, preset.patchSize),
          target: packLatents(tf.sub(eps, latents), preset.patchSize),
          imageIds: imagePositionIds(H, W, { patchSize: preset.patchSize, style: preset.positionIds }),
          textIds: textPositionIds(text.shape[1]),
          timestep: tf.tensor1d(sigmas),
          ...(model.acceptsGuidance ? { guidance: tf.tensor1d(guidance) } : {}),
        };
      });
      let loss: number;
      try {
        ({ loss } = await optimizer.minimize(() => {
          const prediction = model.predict({
            hiddenStates: inputs.tokens,
            timestep: inputs.timestep,
            encoderHiddenStates: text,
            imageIds: inputs.imageIds,
            textIds: inputs.textIds,
            ...(inputs.guidance ? { guidance: inputs.guidance } : {}),
            ...(model.pooledEmbeddingDim
              ? { pooledProjections: condition.pooledEmbeddings as tf.Tensor2D }
              : {}),
          });
          return tf.mean(tf.square(tf.sub(prediction, inputs.target))) as tf.Scalar;
        }));
      } finally {
        tf.dispose([latents, ...Object.values(condition), ...Object.values(inputs)]);
      }
      losses.push(loss);
      options.onStep?.(step, loss);
    }
  } finally {
    optimizer.dispose();
  }
  return losses;
}
