import {
  createRandom,
  InvalidArgumentError,
  type PolicyRegistry,
  type Random,
  sample,
  sampleTeacher,
} from '@piflow/core';
import {
  energyDistance,
  kernelInceptionDistance,
  mmdRBF,
  precisionRecall,
  slicedWasserstein,
  teacherAlignment,
} from '@piflow/eval';
import { isFlowModel, type ModelManifest, type StoredModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { builtinFamilies } from './families';

/** Options of {@link sampleModel}. */
export interface SampleModelOptions {
  /** A student's steps (default: what it was trained for). */
  nfe?: number;
  /** A teacher's Euler steps (default 32). */
  teacherSteps?: number;
  /** The family's sampling options (e.g. GM { temperature: 'auto' }); over those recorded with the model. */
  familyOptions?: Record<string, unknown>;
  /** Where the student's family is found (default: the built-in families). */
  families?: PolicyRegistry;
  guidanceScale?: number;
  /** Class labels, cycled over the samples (class-conditional models). */
  labels?: readonly number[];
  /** A student's sampler stochasticity h (0 = the ODE, default; 'inf' = re-noise fully each step). */
  h?: number | 'inf';
  /** Euler substeps per unit raw time in a student's policy rollouts (default 128). */
  substeps?: number;
  /** Seed of the re-noising when h > 0. */
  seed?: number;
  /** Samples per network call (default {@link SAMPLE_CHUNK_ROWS}). */
  chunkRows?: number;
}

/**
 * Rows of noise one network call takes: the network's activations grow with the batch (a 256-wide MLP holds
 * ≈ 1 KB per sample and activation), and tfjs-wasm's heap is 2–4 GB, so larger counts run in chunks.
 */
export const SAMPLE_CHUNK_ROWS = 8192;

/**
 * Samples a stored model: a student with its few-step sampler, or a flow model with its Euler ODE. Any count
 * works: the noise runs through the network in chunks of `chunkRows` samples (labels keep their cycle, and
 * re-noising with h > 0 continues one random stream).
 */
export async function sampleModel(
  model: StoredModel,
  manifest: ModelManifest,
  noise: tf.Tensor,
  options: SampleModelOptions,
): Promise<{ x: tf.Tensor; nfe: number; seconds: number; labels?: Int32Array }> {
  const started = performance.now();
  const count = noise.shape[0]!;
  const labels = options.labels?.length
    ? Int32Array.from({ length: count }, (_, i) => options.labels![i % options.labels!.length]!)
    : undefined;
  const chunkRows = Math.max(1, Math.floor(options.chunkRows ?? SAMPLE_CHUNK_ROWS));
  const random = options.h !== undefined ? createRandom(options.seed ?? 0) : undefined;
  const parts: tf.Tensor[] = [];
  let nfe = 0;
  try {
    // at least one call, so an empty batch gets the sampler's own answer
    for (let start = 0; start < Math.max(count, 1); start += chunkRows) {
      const rows = Math.min(chunkRows, count - start);
      const chunk = rows === count ? noise : tf.slice(noise, start, rows);
      try {
        const result = await sampleChunk(
          model,
          manifest,
          chunk,
          options,
          labels?.subarray(start, start + rows),
          random,
        );
        parts.push(result.x);
        nfe = result.nfe;
      } finally {
        if (chunk !== noise) chunk.dispose();
      }
    }
  } catch (error) {
    tf.dispose(parts);
    throw error;
  }
  const x = parts.length === 1 ? parts[0]! : tf.concat(parts, 0);
  if (parts.length > 1) tf.dispose(parts);
  return { x, nfe, seconds: (performance.now() - started) / 1000, ...(labels ? { labels } : {}) };
}

/** One chunk of {@link sampleModel}: its labels given per row, and the re-noising stream shared by all chunks. */
async function sampleChunk(
  model: StoredModel,
  manifest: ModelManifest,
  noise: tf.Tensor,
  options: SampleModelOptions,
  labels: Int32Array | undefined,
  random: Random | undefined,
): Promise<{ x: tf.Tensor; nfe: number }> {
  const shift = manifest.sampling?.shift ?? 1;
  const condition = labels ? { labels: tf.tensor1d(labels, 'int32') } : undefined;
  try {
    if (isFlowModel(model)) {
      const steps = options.teacherSteps ?? 32;
      // Classifier-free guidance needs labels: the recorded scale applies only when they are given.
      const guidanceScale =
        options.guidanceScale ?? (labels ? manifest.sampling?.guidanceScale : undefined) ?? 1;
      const x = await sampleTeacher(model.asTeacher({ shift, guidanceScale }), noise, {
        numInferenceSteps: steps,
        ...(condition ? { condition } : {}),
      });
      return { x, nfe: guidanceScale === 1 ? steps : 2 * steps };
    }
    if (
      options.guidanceScale !== undefined &&
      options.guidanceScale !== (manifest.sampling?.guidanceScale ?? 1)
    ) {
      throw new InvalidArgumentError(
        'options.guidanceScale',
        `${manifest.sampling?.guidanceScale ?? 1} for this student (its guidance is distilled in; sample a teacher to change it)`,
        String(options.guidanceScale),
      );
    }
    const nfe = options.nfe ?? manifest.sampling?.numInferenceSteps ?? 4;
    const family = options.families ? options.families.get(model.family) : builtinFamilies[model.family];
    if (!family) {
      throw new InvalidArgumentError(
        'options.families',
        `a registry holding the family "${model.family}"`,
        'the built-in families only',
      );
    }
    // Elastic inference as the reference pipeline: at any step count the trained final step size scale and the
    // recorded sampling options (e.g. GM's temperature rule) apply, unless overridden.
    const x = sample(model, family, noise, {
      numInferenceSteps: nfe,
      shift,
      finalStepSizeScale: manifest.sampling?.finalStepSizeScale ?? 1,
      familyOptions: { ...manifest.sampling?.familyOptions, ...options.familyOptions },
      policyOptions: { ...model.policyOptions },
      ...(options.h !== undefined ? { h: options.h, random } : {}),
      ...(options.substeps !== undefined ? { substeps: options.substeps } : {}),
      ...(condition ? { condition } : {}),
    });
    return { x, nfe };
  } finally {
    if (condition) condition.labels.dispose();
  }
}

export interface QualityRow {
  sampler: string;
  nfe: number;
  slicedW: number;
  mmd: number;
  energy: number;
  /** k-NN precision and recall (k = 3) against the data. */
  precision: number;
  recall: number;
  /** Kernel distance (unbiased MMD², cubic kernel, as KID) to the data. */
  kid: number;
  alignment: number;
  msPer1000: number;
}

/** Distances of 2-D samples to data, and alignment to a reference ODE from the same noise. */
export function qualityRow(
  sampler: string,
  nfe: number,
  samples: ArrayLike<number>,
  data: ArrayLike<number>,
  reference: ArrayLike<number>,
  seconds: number,
): QualityRow {
  const n = samples.length / 2;
  const sub = (values: ArrayLike<number>, m: number) => ({
    values: Array.prototype.slice.call(values, 0, 2 * m) as number[],
    dimension: 2,
  });
  return {
    sampler,
    nfe,
    slicedW: slicedWasserstein(
      { values: samples, dimension: 2 },
      { values: data, dimension: 2 },
      { projections: 64, random: createRandom(1) },
    ),
    mmd: mmdRBF(sub(samples, 600), sub(data, 600), { bandwidth: 0.25 }),
    energy: energyDistance(sub(samples, 600), sub(data, 600)),
    // k-NN balls need k + 1 = 4 rows of each set
    ...(n >= 4
      ? precisionRecall(sub(data, 1500), sub(samples, 1500))
      : { precision: Number.NaN, recall: Number.NaN }),
    kid: kernelInceptionDistance(sub(data, 1500), sub(samples, 1500)).kid,
    alignment: teacherAlignment({ values: samples, dimension: 2 }, { values: reference, dimension: 2 }),
    msPer1000: (seconds * 1000 * 1000) / n,
  };
}

export function formatQualityTable(rows: QualityRow[]): string {
  const lines = [
    '| sampler | NFE | sliced W₂ to data | MMD² (RBF .25) | energy dist. | KID ×10³ | precision | recall | alignment to teacher ODE | ms / 1000 samples |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  const fmt = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(3));
  for (const r of rows) {
    lines.push(
      `| ${r.sampler} | ${r.nfe} | ${r.slicedW.toFixed(4)} | ${r.mmd.toFixed(4)} | ${r.energy.toFixed(4)} | ${(1000 * r.kid).toFixed(2)} | ${fmt(r.precision)} | ${fmt(r.recall)} | ${Number.isNaN(r.alignment) ? '—' : r.alignment.toFixed(4)} | ${r.msPer1000.toFixed(0)} |`,
    );
  }
  return lines.join('\n');
}
