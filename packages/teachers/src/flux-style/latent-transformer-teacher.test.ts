import {
  createAnalyticGMFlow,
  createRandom,
  dynamicShift,
  InvalidArgumentError,
  PiflowError,
  warp,
} from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeTeacherContract } from '../testing';
import {
  createLatentTransformerTeacher,
  type LatentTransformerInputs,
  type LatentTransformerModel,
} from './latent-transformer-teacher';
import { imagePositionIds, packLatents, textPositionIds, unpackLatents } from './packing';
import { flux1, qwenImage } from './presets';

const H = 4;
const W = 6;
const C = 16;
const T = 3;
const D = 64; // text and pooled widths of the test models (= token width, so they can be added to tokens)
const random = createRandom(21);
const tokenFlow = createAnalyticGMFlow({
  means: [
    Array.from({ length: 64 }, () => random.normal()),
    Array.from({ length: 64 }, () => random.normal()),
  ],
  std: 0.5,
  weights: [0.3, 0.7],
});

/** Independent JS packing: token (i, j) feature c·4 + dy·2 + dx = latent (2i + dy, 2j + dx, c). */
function packReference(
  x: ArrayLike<number>,
  B: number,
  height: number,
  width: number,
  channels: number,
): Float64Array {
  const h = height / 2;
  const w = width / 2;
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        for (let c = 0; c < channels; c++)
          for (let dy = 0; dy < 2; dy++)
            for (let dx = 0; dx < 2; dx++) {
              const token = (b * h + i) * w + j;
              out[token * channels * 4 + c * 4 + dy * 2 + dx] =
                x[((b * height + 2 * i + dy) * width + 2 * j + dx) * channels + c]!;
            }
  return out;
}
function unpackReference(
  tokens: ArrayLike<number>,
  B: number,
  height: number,
  width: number,
  channels: number,
): Float64Array {
  const packedIndex = packReference(
    Float64Array.from({ length: tokens.length }, (_, i) => i),
    B,
    height,
    width,
    channels,
  );
  const out = new Float64Array(tokens.length);
  packedIndex.forEach((latentIndex, tokenIndex) => (out[latentIndex] = tokens[tokenIndex]!));
  return out;
}

interface TestModelOptions {
  pooled: boolean;
  guidance: boolean;
  predictionType: 'velocity' | 'x0';
}

/**
 * A model in packed-token layout with a known answer: the exact Gaussian-mixture velocity of the tokens,
 * plus the mean text embedding, plus 0.1·pooled, plus 0.01·guidance (each only when the model takes it).
 */
function testModel(options: TestModelOptions): LatentTransformerModel & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    textEmbeddingDim: D,
    pooledEmbeddingDim: options.pooled ? D : undefined,
    acceptsGuidance: options.guidance,
    predict(inputs: LatentTransformerInputs) {
      calls.push(inputs.hiddenStates.shape[0]);
      expect(inputs.imageIds.shape).toEqual([inputs.hiddenStates.shape[1], 3]);
      expect(inputs.textIds.shape).toEqual([inputs.encoderHiddenStates.shape[1], 3]);
      return tf.tidy(() => {
        let u = tf.add(
          tokenFlow.velocity(inputs.hiddenStates, inputs.timestep),
          tf.mean(inputs.encoderHiddenStates, 1, true),
        );
        if (options.pooled) u = tf.add(u, tf.mul(0.1, tf.expandDims(inputs.pooledProjections!, 1)));
        if (options.guidance) u = tf.add(u, tf.mul(0.01, tf.reshape(inputs.guidance!, [-1, 1, 1])));
        if (options.predictionType === 'x0') {
          return tf.sub(inputs.hiddenStates, tf.mul(tf.reshape(inputs.timestep, [-1, 1, 1]), u));
        }
        return u;
      });
    },
  };
}

/** float64 reference of the whole adapter: pack, model velocity (+ CFG), unpack. */
function reference(
  x: Float32Array,
  sigma: number[],
  condition: Record<string, tf.Tensor>,
  options: { pooled: boolean; guidanceValue?: number; cfgScale?: number; interval?: [number, number] },
): Float64Array {
  const B = sigma.length;
  const L = (H / 2) * (W / 2);
  const tokens = packReference(x, B, H, W, C);
  const textMean = (name: string) => {
    const t = condition[name]!.dataSync();
    const out = new Float64Array(B * D);
    for (let b = 0; b < B; b++)
      for (let k = 0; k < T; k++) for (let d = 0; d < D; d++) out[b * D + d]! += t[(b * T + k) * D + d]! / T;
    return out;
  };
  const velocity = (textName: string, pooledName: string) => {
    const text = textMean(textName);
    const pooled = options.pooled ? condition[pooledName]!.dataSync() : undefined;
    const out = new Float64Array(tokens.length);
    for (let b = 0; b < B; b++) {
      const rows = tokens.subarray(b * L * 64, (b + 1) * L * 64);
      const u = tokenFlow.velocityFloat64(rows, sigma[b]!);
      for (let l = 0; l < L; l++)
        for (let d = 0; d < 64; d++) {
          let v = u[l * 64 + d]! + text[b * D + d]!;
          if (pooled) v += 0.1 * pooled[b * D + d]!;
          if (options.guidanceValue !== undefined) v += 0.01 * options.guidanceValue;
          out[(b * L + l) * 64 + d] = v;
        }
    }
    return out;
  };
  let u = velocity('textEmbeddings', 'pooledEmbeddings');
  if (options.cfgScale !== undefined) {
    const uu = velocity('negativeTextEmbeddings', 'negativePooledEmbeddings');
    const [low, high] = options.interval ?? [0, 1];
    u = u.map((v, i) => {
      const s = sigma[Math.floor(i / (L * 64))]!;
      const g = s >= low && s <= high ? options.cfgScale! : 1;
      return v + (g - 1) * (v - uu[i]!);
    });
  }
  return unpackReference(u, B, H, W, C);
}

function makeCondition(
  batch: number,
  r: ReturnType<typeof createRandom>,
  pooled: boolean,
  negative: boolean,
) {
  const condition: Record<string, tf.Tensor> = { textEmbeddings: r.normalTensor([batch, T, D]) };
  if (pooled) condition.pooledEmbeddings = r.normalTensor([batch, D]);
  if (negative) {
    condition.negativeTextEmbeddings = r.normalTensor([batch, T, D]);
    if (pooled) condition.negativePooledEmbeddings = r.normalTensor([batch, D]);
  }
  return condition;
}

const inputs =
  (pooled: boolean, negative: boolean) => (batch: number, r: ReturnType<typeof createRandom>) => ({
    x: r.normalTensor([batch, H, W, C]),
    sigma: Array.from({ length: batch }, () => 0.05 + 0.9 * r.uniform()),
    condition: makeCondition(batch, r, pooled, negative),
  });

describeTeacherContract('FLUX-style adapter (flux1 preset, embedded guidance 3.5, x0-predicting model)', {
  metadata: {
    layout: 'image',
    sampleShape: [4, 6, 16],
    shift: 3.2,
    guidance: 'embedded',
    conditionNames: ['textEmbeddings', 'pooledEmbeddings'],
    description: 'flux1-style latent transformer (embedded guidance 3.5)',
  },
  create: () =>
    createLatentTransformerTeacher({
      model: testModel({ pooled: true, guidance: true, predictionType: 'x0' }),
      preset: flux1,
      predictionType: 'x0',
      sampleShape: [H, W, C],
    }),
  makeInputs: inputs(true, false),
  reference: ({ x, sigma, condition }) =>
    reference(x.dataSync() as Float32Array, sigma, condition as Record<string, tf.Tensor>, {
      pooled: true,
      guidanceValue: 3.5,
    }),
  tolerance: 5e-4,
});

describeTeacherContract('Qwen-Image-style adapter (qwenImage preset, CFG 4 on σ ≤ 0.9, batched)', {
  metadata: {
    layout: 'image',
    shift: 3.2,
    guidance: 'cfg',
    conditionNames: ['textEmbeddings', 'negativeTextEmbeddings'],
    description: 'qwenImage-style latent transformer (CFG 4)',
  },
  create: () =>
    createLatentTransformerTeacher({
      model: testModel({ pooled: false, guidance: false, predictionType: 'velocity' }),
      preset: qwenImage,
      guidance: { mode: 'cfg', guidanceScale: 4, interval: [0, 0.9] },
    }),
  makeInputs: inputs(false, true),
  reference: ({ x, sigma, condition }) =>
    reference(x.dataSync() as Float32Array, sigma, condition as Record<string, tf.Tensor>, {
      pooled: false,
      cfgScale: 4,
      interval: [0, 0.9],
    }),
  tolerance: 1e-4,
});

describeTeacherContract('FLUX-style adapter with true CFG and pooled negatives', {
  metadata: {
    layout: 'image',
    shift: 3.2,
    guidance: 'cfg',
    conditionNames: [
      'textEmbeddings',
      'pooledEmbeddings',
      'negativeTextEmbeddings',
      'negativePooledEmbeddings',
    ],
    description: 'flux1-style latent transformer (CFG 2.5)',
  },
  backends: ['cpu'],
  create: () =>
    createLatentTransformerTeacher({
      model: testModel({ pooled: true, guidance: false, predictionType: 'velocity' }),
      preset: flux1,
      guidance: { mode: 'cfg', guidanceScale: 2.5 },
    }),
  makeInputs: inputs(true, true),
  reference: ({ x, sigma, condition }) =>
    reference(x.dataSync() as Float32Array, sigma, condition as Record<string, tf.Tensor>, {
      pooled: true,
      cfgScale: 2.5,
    }),
  tolerance: 1e-4,
});

describe('packing', () => {
  beforeAll(() => useBackend('cpu'));

  it('packs [B, H, W, 16] into [B, H·W/4, 64] in the diffusers layout and round-trips exactly', () => {
    const x = createRandom(1).normalTensor([2, H, W, C]);
    const tokens = packLatents(x);
    expect(tokens.shape).toEqual([2, (H * W) / 4, 64]);
    expect(Array.from(tokens.dataSync())).toEqual(
      Array.from(packReference(x.dataSync(), 2, H, W, C), Math.fround),
    );
    const back = unpackLatents(tokens, H, W);
    expect(back.shape).toEqual(x.shape);
    expect(Array.from(back.dataSync())).toEqual(Array.from(x.dataSync()));
    tf.dispose([x, tokens, back]);
  });

  it('rejects latents and tokens that do not fit the patch grid', () => {
    const odd = tf.zeros([1, 3, 4, 16]);
    expect(() => packLatents(odd)).toThrow(InvalidArgumentError);
    const tokens = tf.zeros([1, 6, 64]);
    expect(() => unpackLatents(tokens, 4, 4)).toThrow(/tokens/);
    expect(() => unpackLatents(tokens, 5, 6)).toThrow(/multiples/);
    expect(() => packLatents(tf.zeros([4, 16]) as never)).toThrow(/latents/);
    tf.dispose([odd, tokens]);
  });

  it('lays out position ids as FLUX.1 (row, column) and Qwen-Image (centred)', () => {
    const flux = imagePositionIds(4, 6).arraySync();
    expect(flux).toHaveLength(6);
    expect(flux[0]).toEqual([0, 0, 0]);
    expect(flux[4]).toEqual([0, 1, 1]);
    expect(flux[5]).toEqual([0, 1, 2]);
    const qwen = imagePositionIds(4, 6, { style: 'qwen-image' }).arraySync();
    // h = 2 rows → −1, 0; w = 3 columns → −2, −1, 0
    expect(qwen.map((r) => r[1])).toEqual([-1, -1, -1, 0, 0, 0]);
    expect(qwen.map((r) => r[2])).toEqual([-2, -1, 0, -2, -1, 0]);
    expect(textPositionIds(3).arraySync()).toEqual([
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ]);
  });
});

describe('presets and shift', () => {
  it('carry the published constants', () => {
    expect(flux1).toMatchObject({
      latentChannels: 16,
      patchSize: 2,
      vaeScaleFactor: 8,
      textEmbeddingDim: 4096,
      pooledEmbeddingDim: 768,
      schedulerShift: 3,
      piFlowShift: 3.2,
      guidance: 'embedded',
      defaultGuidance: 3.5,
    });
    expect(flux1.dynamicShift).toEqual({
      baseSequenceLength: 256,
      maxSequenceLength: 4096,
      baseShift: 0.5,
      maxShift: 1.15,
    });
    expect(qwenImage).toMatchObject({
      latentChannels: 16,
      patchSize: 2,
      textEmbeddingDim: 3584,
      guidance: 'cfg',
      defaultGuidance: 4,
    });
    expect(qwenImage.pooledEmbeddingDim).toBeUndefined();
    expect(qwenImage.dynamicShift).toEqual({
      baseSequenceLength: 256,
      maxSequenceLength: 8192,
      baseShift: 0.5,
      maxShift: 0.9,
    });
    expect(Object.isFrozen(flux1)).toBe(true);
  });

  it('uses shift 3.2 by default and the dynamic shift of the token count when asked', () => {
    const model = testModel({ pooled: true, guidance: true, predictionType: 'velocity' });
    const fixed = createLatentTransformerTeacher({ model });
    expect(fixed.metadata.shift).toBe(3.2);
    // 1024×1024 image → 128×128 latent → 4096 tokens: FLUX's max shift e^1.15
    const dynamic = createLatentTransformerTeacher({ model, shift: 'dynamic', sampleShape: [128, 128, 16] });
    expect(dynamic.metadata.shift).toBeCloseTo(Math.exp(1.15), 12);
    expect(dynamic.shiftFor(32, 32)).toBeCloseTo(Math.exp(0.5), 12); // 256 tokens: base shift
    expect(dynamic.shiftFor(64, 64)).toBeCloseTo(dynamicShift(1024, flux1.dynamicShift), 12);
    // the shifted grid equals diffusers' time shift e^μ/(e^μ + 1/t − 1)
    const mu = Math.log(dynamic.shiftFor(64, 64));
    expect(warp(0.3, dynamic.shiftFor(64, 64))).toBeCloseTo(Math.exp(mu) / (Math.exp(mu) + 1 / 0.3 - 1), 12);
    expect(() => createLatentTransformerTeacher({ model, shift: 'dynamic' })).toThrow(/sampleShape/);
    expect(() => createLatentTransformerTeacher({ model, shift: -1 })).toThrow(/shift/);
  });
});

describe('createLatentTransformerTeacher errors', () => {
  beforeAll(() => useBackend('cpu'));

  it('rejects guidance modes the model cannot do and bad sample shapes', () => {
    const withGuidance = testModel({ pooled: true, guidance: true, predictionType: 'velocity' });
    const without = testModel({ pooled: false, guidance: false, predictionType: 'velocity' });
    expect(() => createLatentTransformerTeacher({ model: without, preset: flux1 })).toThrow(
      /no guidance input/,
    );
    expect(() => createLatentTransformerTeacher({ model: withGuidance, preset: qwenImage })).toThrow(
      /embedded/,
    );
    expect(() => createLatentTransformerTeacher({ model: withGuidance, sampleShape: [5, 4, 16] })).toThrow(
      /sampleShape/,
    );
    expect(() => createLatentTransformerTeacher({ model: withGuidance, sampleShape: [4, 4, 8] })).toThrow(
      /sampleShape/,
    );
    expect(() => createLatentTransformerTeacher({ model: {} as never })).toThrow(/model/);
    expect(() =>
      createLatentTransformerTeacher({
        model: without,
        preset: qwenImage,
        guidance: { mode: 'cfg', guidanceScale: -2 },
      }),
    ).toThrow(/guidance\.guidanceScale/);
    // The old option names fail, naming the new one.
    expect(() =>
      createLatentTransformerTeacher({
        model: without,
        preset: qwenImage,
        guidance: { mode: 'cfg', scale: 2 } as never,
      }),
    ).toThrow(/guidance\.scale.*guidanceScale/);
    expect(() =>
      createLatentTransformerTeacher({
        model: withGuidance,
        guidance: { mode: 'embedded', value: 2 } as never,
      }),
    ).toThrow(/guidance\.value.*guidanceScale/);
  });

  it('names the missing negative embeddings, wrong text widths and odd latent sizes', async () => {
    const teacher = createLatentTransformerTeacher({
      model: testModel({ pooled: false, guidance: false, predictionType: 'velocity' }),
      preset: qwenImage,
    });
    const r = createRandom(2);
    const x = r.normalTensor([2, H, W, C]);
    const condition = makeCondition(2, r, false, false);
    await expect(teacher.velocity(x, 0.5, condition)).rejects.toThrow(/condition\.negativeTextEmbeddings/);
    const narrow = {
      ...condition,
      textEmbeddings: tf.zeros([2, T, 32]),
      negativeTextEmbeddings: tf.zeros([2, T, 32]),
    };
    await expect(teacher.velocity(x, 0.5, narrow)).rejects.toThrow(/textEmbeddings.*64/);
    const odd = tf.zeros([2, 5, 6, C]);
    const full = makeCondition(2, r, false, true);
    await expect(teacher.velocity(odd, 0.5, full)).rejects.toThrow(/multiples of 2/);
    tf.dispose([
      x,
      odd,
      ...Object.values(condition),
      ...Object.values(full),
      narrow.textEmbeddings,
      narrow.negativeTextEmbeddings,
    ]);
  });

  it('batches cond + uncond into one model call and reports a model that breaks the layout', async () => {
    const model = testModel({ pooled: false, guidance: false, predictionType: 'velocity' });
    const teacher = createLatentTransformerTeacher({ model, preset: qwenImage });
    const r = createRandom(3);
    const x = r.normalTensor([3, H, W, C]);
    const condition = makeCondition(3, r, false, true);
    const u = await teacher.velocity(x, 0.5, condition);
    expect(model.calls).toEqual([6]);
    u.dispose();
    const broken = createLatentTransformerTeacher({
      model: { ...model, predict: (inputs) => tf.zeros([inputs.hiddenStates.shape[0], 2, 64]) },
      preset: qwenImage,
      guidance: { mode: 'none' },
    });
    const before = tf.memory().numTensors;
    await expect(broken.velocity(x, 0.5, condition)).rejects.toThrow(PiflowError);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ...Object.values(condition)]);
  });
});
