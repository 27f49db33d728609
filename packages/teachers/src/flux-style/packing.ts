import { assertNumber, assertTensor, describeValue, InvalidArgumentError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Packs channels-last latents [B, H, W, C] into 2×2 (p×p) patch tokens [B, (H/p)·(W/p), C·p·p], the token
 * layout of FLUX.1 and Qwen-Image. Tokens run row-major over the patch grid; within a token the feature
 * index is c·p·p + dy·p + dx (channel-major, as diffusers' `_pack_latents` does on [B, C, H, W] latents).
 */
export function packLatents(latents: tf.Tensor, patchSize = 2): tf.Tensor3D {
  assertTensor('latents', latents, { rank: 4 });
  assertNumber('patchSize', patchSize, { min: 1, integer: true });
  const [B, H, W, C] = latents.shape as [number, number, number, number];
  if (H % patchSize !== 0 || W % patchSize !== 0) {
    throw new InvalidArgumentError(
      'latents',
      `latents [B, H, W, C] with H and W divisible by the patch size ${patchSize}`,
      describeValue(latents),
    );
  }
  const h = H / patchSize;
  const w = W / patchSize;
  return tf.tidy(() => {
    // [B, h, p, w, p, C] → [B, h, w, C, p, p] → [B, h·w, C·p·p]
    const six = tf.reshape(latents, [B, h, patchSize, w, patchSize, C]);
    return tf.reshape(tf.transpose(six, [0, 1, 3, 5, 2, 4]), [B, h * w, C * patchSize * patchSize]);
  });
}

/** The inverse of {@link packLatents}: tokens [B, (H/p)·(W/p), C·p·p] → latents [B, H, W, C]. */
export function unpackLatents(tokens: tf.Tensor, height: number, width: number, patchSize = 2): tf.Tensor4D {
  assertTensor('tokens', tokens, { rank: 3 });
  assertNumber('patchSize', patchSize, { min: 1, integer: true });
  assertNumber('height', height, { min: patchSize, integer: true });
  assertNumber('width', width, { min: patchSize, integer: true });
  const [B, L, D] = tokens.shape as [number, number, number];
  const p2 = patchSize * patchSize;
  if (height % patchSize !== 0 || width % patchSize !== 0) {
    throw new InvalidArgumentError(
      'height, width',
      `multiples of the patch size ${patchSize}`,
      `${height} × ${width}`,
    );
  }
  const h = height / patchSize;
  const w = width / patchSize;
  if (L !== h * w || D % p2 !== 0) {
    throw new InvalidArgumentError(
      'tokens',
      `a tensor [B, ${h * w}, C·${p2}] for ${height} × ${width} latents with ${patchSize}×${patchSize} patches`,
      describeValue(tokens),
    );
  }
  const C = D / p2;
  return tf.tidy(() => {
    const six = tf.reshape(tokens, [B, h, w, C, patchSize, patchSize]);
    return tf.reshape(tf.transpose(six, [0, 1, 4, 2, 5, 3]), [B, height, width, C]) as tf.Tensor4D;
  });
}

export type PositionIdStyle = 'flux' | 'qwen-image';

/**
 * Position ids of the packed image tokens, [L, 3] float32 (L = (H/p)·(W/p), row-major):
 * - 'flux' (FLUX.1's `_prepare_latent_image_ids`): (0, row, column);
 * - 'qwen-image' (Qwen-Image's centred RoPE, `scale_rope`): (0, row − (h − ⌊h/2⌋), column − (w − ⌊w/2⌋)),
 *   so rows run from −(h − ⌊h/2⌋) to ⌊h/2⌋ − 1 over the h = H/p token rows, and columns likewise.
 */
export function imagePositionIds(
  height: number,
  width: number,
  options: { patchSize?: number; style?: PositionIdStyle } = {},
): tf.Tensor2D {
  const { patchSize = 2, style = 'flux' } = options;
  assertNumber('patchSize', patchSize, { min: 1, integer: true });
  assertNumber('height', height, { min: patchSize, integer: true });
  assertNumber('width', width, { min: patchSize, integer: true });
  const h = Math.floor(height / patchSize);
  const w = Math.floor(width / patchSize);
  const rowOffset = style === 'qwen-image' ? h - Math.floor(h / 2) : 0;
  const colOffset = style === 'qwen-image' ? w - Math.floor(w / 2) : 0;
  const ids = new Float32Array(h * w * 3);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const t = (i * w + j) * 3;
      ids[t + 1] = i - rowOffset;
      ids[t + 2] = j - colOffset;
    }
  }
  return tf.tensor2d(ids, [h * w, 3]);
}

/** Position ids of the text tokens, [T, 3] zeros (FLUX.1 gives every text token position 0). */
export function textPositionIds(numTokens: number): tf.Tensor2D {
  assertNumber('numTokens', numTokens, { min: 1, integer: true });
  return tf.zeros([numTokens, 3]) as tf.Tensor2D;
}
