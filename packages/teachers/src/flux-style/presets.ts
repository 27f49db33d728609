import type { DynamicShiftOptions } from '@piflow/core';
import type { PositionIdStyle } from './packing';

/** Published constants of a latent flow transformer family (FLUX.1, Qwen-Image). */
export interface LatentTransformerPreset {
  readonly name: string;
  /** Channels of the VAE latent. */
  readonly latentChannels: number;
  /** Side of the square patches packed into one token (2 → 2×2 patches, 4·latentChannels features). */
  readonly patchSize: number;
  /** Pixels per latent pixel along each side. */
  readonly vaeScaleFactor: number;
  /** Width of the per-token text embeddings. */
  readonly textEmbeddingDim: number;
  /** Width of the pooled text embedding, or undefined when the model takes none. */
  readonly pooledEmbeddingDim: number | undefined;
  /** The published scheduler's fixed shift (used when dynamic shifting is off). */
  readonly schedulerShift: number;
  /** The published scheduler's dynamic shifting (log-shift linear in the token count). */
  readonly dynamicShift: Required<DynamicShiftOptions>;
  /** The shift π-Flow's configs use (fixed, no dynamic shifting). */
  readonly piFlowShift: number;
  /** 'embedded': guidance value as a model input (FLUX.1-dev); 'cfg': true classifier-free guidance. */
  readonly guidance: 'embedded' | 'cfg';
  /** Default guidance value (embedded) or CFG scale. */
  readonly defaultGuidance: number;
  /** How the image tokens' position ids are laid out. */
  readonly positionIds: PositionIdStyle;
  /** The model takes the timestep as σ·timestepScale (diffusers passes t/1000 = σ to both). */
  readonly timestepScale: number;
}

/**
 * FLUX.1 (black-forest-labs, dev/schnell; diffusers `FluxPipeline` + `FluxTransformer2DModel`):
 * 16-channel latents, VAE factor 8, 2×2 packing into 64-d tokens, T5-XXL text embeddings 4096-d, pooled
 * CLIP embedding 768-d, guidance embedding (dev, default 3.5). Scheduler config
 * (`FLUX.1-dev/scheduler/scheduler_config.json`, FlowMatchEulerDiscreteScheduler): shift 3.0,
 * use_dynamic_shifting true, base_image_seq_len 256, max_image_seq_len 4096, base_shift 0.5,
 * max_shift 1.15 — as mirrored, e.g., in taproot's FluxScheduler default config
 * (pypi taproot-0.3.8, tasks/generation/image/flux/pretrained/scheduler.py). π-Flow's FLUX configs
 * (Lakonik/piFlow, configs/piflux/*) use shift 3.2 with dynamic shifting off.
 */
export const flux1: LatentTransformerPreset = Object.freeze({
  name: 'flux1',
  latentChannels: 16,
  patchSize: 2,
  vaeScaleFactor: 8,
  textEmbeddingDim: 4096,
  pooledEmbeddingDim: 768,
  schedulerShift: 3.0,
  dynamicShift: Object.freeze({
    baseSequenceLength: 256,
    maxSequenceLength: 4096,
    baseShift: 0.5,
    maxShift: 1.15,
  }),
  piFlowShift: 3.2,
  guidance: 'embedded',
  defaultGuidance: 3.5,
  positionIds: 'flux',
  timestepScale: 1,
});

/**
 * Qwen-Image (Qwen; diffusers `QwenImagePipeline` + `QwenImageTransformer2DModel`): 16-channel latents,
 * VAE factor 8, 2×2 packing into 64-d tokens, Qwen2.5-VL text embeddings 3584-d, no pooled embedding, true
 * classifier-free guidance (π-Flow's Qwen configs: teacher CFG scale 4.0). Scheduler config: shift 1.0,
 * use_dynamic_shifting true, base_image_seq_len 256, max_image_seq_len 8192, base_shift 0.5, max_shift 0.9
 * (exponential time shift, shift_terminal 0.02) — the values mflux also carries in
 * (filipstrand/mflux) models/common/schedulers/flow_match_euler_discrete_scheduler.py. π-Flow's Qwen configs
 * use shift 3.2 with dynamic shifting off.
 */
export const qwenImage: LatentTransformerPreset = Object.freeze({
  name: 'qwenImage',
  latentChannels: 16,
  patchSize: 2,
  vaeScaleFactor: 8,
  textEmbeddingDim: 3584,
  pooledEmbeddingDim: undefined,
  schedulerShift: 1.0,
  dynamicShift: Object.freeze({
    baseSequenceLength: 256,
    maxSequenceLength: 8192,
    baseShift: 0.5,
    maxShift: 0.9,
  }),
  piFlowShift: 3.2,
  guidance: 'cfg',
  defaultGuidance: 4.0,
  positionIds: 'qwen-image',
  timestepScale: 1,
});
