import {
  assertNumber,
  assertOneOf,
  assertSigma,
  assertTensor,
  type Condition,
  describeValue,
  dynamicShift,
  InvalidArgumentError,
  PiflowError,
  type PredictionType,
  predictionToVelocity,
  predictionTypes,
  type Sigma,
  sigmaValues,
  type TeacherMetadata,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { assertCondition, type LocalTeacher } from '../teacher-inputs';
import { imagePositionIds, packLatents, textPositionIds, unpackLatents } from './packing';
import { flux1, type LatentTransformerPreset } from './presets';

/** What a FLUX/Qwen-Image-style transformer is called with (diffusers' argument names, camel-cased). */
export interface LatentTransformerInputs {
  /** Packed latent tokens [B, L, C·p²]. */
  hiddenStates: tf.Tensor3D;
  /** [B] σ·timestepScale (diffusers passes t/1000 = σ). */
  timestep: tf.Tensor1D;
  /** [B] embedded guidance value (FLUX.1-dev), when the model takes one. */
  guidance?: tf.Tensor1D;
  /** Text embeddings [B, T, D_text]. */
  encoderHiddenStates: tf.Tensor3D;
  /** Pooled text embedding [B, D_pooled], when the model takes one. */
  pooledProjections?: tf.Tensor2D;
  /** Image token position ids [L, 3]. */
  imageIds: tf.Tensor2D;
  /** Text token position ids [T, 3]. */
  textIds: tf.Tensor2D;
}

/** A latent transformer in packed-token layout: returns its prediction [B, L, C·p²]. Synchronous. */
export interface LatentTransformerModel {
  /** Text-embedding width it takes (checked against the condition). */
  readonly textEmbeddingDim: number;
  /** Pooled-embedding width, or undefined when it takes none. */
  readonly pooledEmbeddingDim?: number;
  /** Whether it takes an embedded guidance value. */
  readonly acceptsGuidance: boolean;
  predict(inputs: LatentTransformerInputs): tf.Tensor;
  dispose?(): void;
}

export type LatentGuidance =
  | { mode: 'none' }
  /** FLUX.1-dev: the guidance scale is a model input (default: the preset's 3.5). */
  | { mode: 'embedded'; guidanceScale?: number }
  /**
   * True classifier-free guidance in one batched call of 2B: u = u_c + (g − 1)·(u_c − u_u) for σ inside
   * `interval` (default [0, 1]), u_c elsewhere. Unconditional inputs come from the condition's
   * `negativeTextEmbeddings` (and `negativePooledEmbeddings` when pooled embeddings are used).
   */
  | { mode: 'cfg'; guidanceScale?: number; interval?: readonly [number, number] };

export interface LatentTransformerTeacherOptions {
  model: LatentTransformerModel;
  /** Published constants (default flux1). */
  preset?: LatentTransformerPreset;
  /** Guidance (default: the preset's mode with its default value). */
  guidance?: LatentGuidance;
  /** Shift to sample with: a number, or 'dynamic' (from the token count; needs `sampleShape`). Default: the preset's π-Flow shift. */
  shift?: number | 'dynamic';
  /** Per-sample latent shape [H, W, C], when fixed. */
  sampleShape?: readonly [number, number, number];
  /** What the model predicts (default 'velocity', as FLUX and Qwen-Image do). */
  predictionType?: PredictionType;
  /** Override of the preset's latent channel count (e.g. a model with other latents). */
  latentChannels?: number;
  description?: string;
}

export interface LatentTransformerTeacher extends LocalTeacher {
  readonly model: LatentTransformerModel;
  readonly preset: LatentTransformerPreset;
  /** The shift for latents of the given size (dynamic shifting if configured, else the fixed shift). */
  shiftFor(height: number, width: number): number;
}

/**
 * A FLUX.1 / Qwen-Image-style latent transformer as a `Teacher`. It takes channels-last latents
 * x: [B, H, W, C] (C = 16 for both presets), packs them into 2×2-patch tokens [B, H·W/4, 64] with their
 * position ids, feeds σ·timestepScale, the text embeddings (`condition.textEmbeddings` [B, T, D_text]),
 * the pooled embedding (`condition.pooledEmbeddings` [B, D_pooled], FLUX) and the guidance input, and
 * unpacks the prediction back to [B, H, W, C] as a velocity.
 */
export function createLatentTransformerTeacher(
  options: LatentTransformerTeacherOptions,
): LatentTransformerTeacher {
  const {
    model,
    preset = flux1,
    predictionType = 'velocity',
  } = options ?? ({} as LatentTransformerTeacherOptions);
  if (!model || typeof model.predict !== 'function') {
    throw new InvalidArgumentError(
      'model',
      'a LatentTransformerModel (predict(inputs) → tokens)',
      describeValue(model),
    );
  }
  assertOneOf('predictionType', predictionType, predictionTypes);
  const channels = options.latentChannels ?? preset.latentChannels;
  assertNumber('latentChannels', channels, { min: 1, integer: true });
  const p = preset.patchSize;
  const guidance: LatentGuidance =
    options.guidance ??
    (preset.guidance === 'embedded'
      ? { mode: 'embedded', guidanceScale: preset.defaultGuidance }
      : { mode: 'cfg', guidanceScale: preset.defaultGuidance });
  assertOneOf('guidance.mode', guidance.mode, ['none', 'embedded', 'cfg']);
  for (const old of ['scale', 'value']) {
    if (old in guidance) {
      throw new InvalidArgumentError(
        `guidance.${old}`,
        `guidance.guidanceScale (${old} was renamed to guidanceScale)`,
        describeValue((guidance as unknown as Record<string, unknown>)[old]),
      );
    }
  }
  let guidanceValue = 0;
  let cfgScale = 1;
  let interval: readonly [number, number] = [0, 1];
  if (guidance.mode === 'embedded') {
    if (!model.acceptsGuidance) {
      throw new InvalidArgumentError(
        'guidance',
        "'cfg' or 'none' (this model has no guidance input)",
        "'embedded'",
      );
    }
    guidanceValue = guidance.guidanceScale ?? preset.defaultGuidance;
    assertNumber('guidance.guidanceScale', guidanceValue, { min: 0 });
  } else if (model.acceptsGuidance) {
    throw new InvalidArgumentError(
      'guidance',
      "{ mode: 'embedded' } (this model takes an embedded guidance value)",
      JSON.stringify(guidance.mode),
    );
  }
  if (guidance.mode === 'cfg') {
    cfgScale = guidance.guidanceScale ?? preset.defaultGuidance;
    assertNumber('guidance.guidanceScale', cfgScale, { min: 0 });
    interval = guidance.interval ?? [0, 1];
    assertNumber('guidance.interval[0]', interval[0], { min: 0, max: 1 });
    assertNumber('guidance.interval[1]', interval[1], { min: interval[0], max: 1 });
  }
  const pooled = model.pooledEmbeddingDim !== undefined && model.pooledEmbeddingDim > 0;
  if (options.sampleShape) {
    const [H, W, C] = options.sampleShape;
    assertNumber('sampleShape[0]', H, { min: p, integer: true });
    assertNumber('sampleShape[1]', W, { min: p, integer: true });
    if (H % p !== 0 || W % p !== 0 || C !== channels) {
      throw new InvalidArgumentError(
        'sampleShape',
        `[H, W, ${channels}] with H and W multiples of ${p}`,
        JSON.stringify(options.sampleShape),
      );
    }
  }
  const shiftFor = (height: number, width: number): number => {
    if (options.shift === 'dynamic') return dynamicShift((height / p) * (width / p), preset.dynamicShift);
    return options.shift ?? preset.piFlowShift;
  };
  if (options.shift === 'dynamic' && !options.sampleShape) {
    throw new InvalidArgumentError(
      'sampleShape',
      "[H, W, C] (shift 'dynamic' depends on the token count)",
      'undefined',
    );
  }
  if (options.shift !== undefined && options.shift !== 'dynamic') {
    assertNumber('shift', options.shift, { min: 0, minExclusive: true });
  }
  const conditionNames = ['textEmbeddings', ...(pooled ? ['pooledEmbeddings'] : [])];
  if (guidance.mode === 'cfg' && cfgScale !== 1) {
    conditionNames.push('negativeTextEmbeddings', ...(pooled ? ['negativePooledEmbeddings'] : []));
  }
  const metadata: TeacherMetadata = {
    layout: 'image',
    ...(options.sampleShape ? { sampleShape: [...options.sampleShape] } : {}),
    shift: options.sampleShape ? shiftFor(options.sampleShape[0], options.sampleShape[1]) : shiftFor(0, 0),
    guidance: guidance.mode,
    conditionNames,
    description:
      options.description ??
      `${preset.name}-style latent transformer (${guidance.mode === 'embedded' ? `embedded guidance ${guidanceValue}` : guidance.mode === 'cfg' ? `CFG ${cfgScale}` : 'no guidance'})`,
  };

  const checkCall = (x: unknown, sigma: Sigma, condition: Condition | undefined): tf.Tensor4D => {
    if (options.sampleShape) assertTensor('x', x, { shape: [null, ...options.sampleShape] });
    else assertTensor('x', x, { shape: [null, null, null, channels] });
    const [B, H, W] = x.shape as [number, number, number, number];
    if (H % p !== 0 || W % p !== 0) {
      throw new InvalidArgumentError(
        'x',
        `latents [B, H, W, ${channels}] with H and W multiples of ${p}`,
        describeValue(x),
      );
    }
    assertSigma('sigma', sigma, B, predictionType === 'x0' ? { allowZero: false } : {});
    assertCondition(condition, conditionNames, B);
    const text = condition!.textEmbeddings!;
    assertTensor('condition.textEmbeddings', text, { shape: [B, null, model.textEmbeddingDim] });
    if (pooled) {
      assertTensor('condition.pooledEmbeddings', condition!.pooledEmbeddings, {
        shape: [B, model.pooledEmbeddingDim!],
      });
    }
    if (conditionNames.includes('negativeTextEmbeddings')) {
      assertTensor('condition.negativeTextEmbeddings', condition!.negativeTextEmbeddings, {
        shape: [B, text.shape[1]!, model.textEmbeddingDim],
      });
      if (pooled) {
        assertTensor('condition.negativePooledEmbeddings', condition!.negativePooledEmbeddings, {
          shape: [B, model.pooledEmbeddingDim!],
        });
      }
    }
    return x as tf.Tensor4D;
  };

  const run = (
    tokens: tf.Tensor3D,
    t: tf.Tensor1D,
    text: tf.Tensor3D,
    pooledEmbeddings: tf.Tensor2D | undefined,
    imageIds: tf.Tensor2D,
    textIds: tf.Tensor2D,
  ): tf.Tensor => {
    const batch = tokens.shape[0];
    const out = model.predict({
      hiddenStates: tokens,
      timestep: t,
      encoderHiddenStates: text,
      imageIds,
      textIds,
      ...(model.acceptsGuidance ? { guidance: tf.fill([batch], guidanceValue) as tf.Tensor1D } : {}),
      ...(pooled ? { pooledProjections: pooledEmbeddings } : {}),
    });
    if (out.shape.join() !== tokens.shape.join()) {
      throw new PiflowError(
        `The latent transformer returned shape [${out.shape.join(', ')}] for tokens [${tokens.shape.join(', ')}]; ` +
          'it must return the packed layout of its input.',
      );
    }
    return out;
  };

  const velocitySync = (x: tf.Tensor, sigma: Sigma, condition?: Condition): tf.Tensor => {
    const latents = checkCall(x, sigma, condition);
    const [B, H, W] = latents.shape;
    const sigmas = sigmaValues(sigma, B);
    return tf.tidy(() => {
      const tokens = packLatents(latents, p);
      const t = tf.mul(tf.tensor1d(sigmas), preset.timestepScale) as tf.Tensor1D;
      const text = condition!.textEmbeddings as tf.Tensor3D;
      const imageIds = imagePositionIds(H, W, { patchSize: p, style: preset.positionIds });
      const textIds = textPositionIds(text.shape[1]);
      const gains = Float32Array.from(sigmas, (s) => (s >= interval[0] && s <= interval[1] ? cfgScale : 1));
      let prediction: tf.Tensor;
      if (guidance.mode === 'cfg' && gains.some((g) => g !== 1)) {
        // cond + uncond in one batched call of 2B
        const both = run(
          tf.concat([tokens, tokens], 0) as tf.Tensor3D,
          tf.concat([t, t], 0) as tf.Tensor1D,
          tf.concat([text, condition!.negativeTextEmbeddings!], 0) as tf.Tensor3D,
          pooled
            ? (tf.concat(
                [condition!.pooledEmbeddings!, condition!.negativePooledEmbeddings!],
                0,
              ) as tf.Tensor2D)
            : undefined,
          imageIds,
          textIds,
        );
        const [cond, uncond] = tf.split(both, 2, 0) as [tf.Tensor, tf.Tensor];
        const g = tf.tensor3d(gains, [B, 1, 1]);
        prediction = tf.add(cond, tf.mul(tf.sub(g, 1), tf.sub(cond, uncond)));
      } else {
        prediction = run(
          tokens,
          t,
          text,
          condition?.pooledEmbeddings as tf.Tensor2D | undefined,
          imageIds,
          textIds,
        );
      }
      const unpacked = unpackLatents(tf.cast(prediction, 'float32'), H, W, p);
      return predictionToVelocity(unpacked, latents, sigma, predictionType);
    });
  };

  return {
    metadata,
    model,
    preset,
    shiftFor(height, width) {
      assertNumber('height', height, { min: p, integer: true });
      assertNumber('width', width, { min: p, integer: true });
      return shiftFor(height, width);
    },
    velocitySync,
    async velocity(x, sigma, condition) {
      return velocitySync(x, sigma, condition);
    },
    dispose() {
      model.dispose?.();
    },
  };
}
