import {
  type AnalyticGMFlow,
  createRandom,
  type PolicyRegistry,
  sampleTeacher,
  type Teacher,
} from '@piflow/core';
import { gaussianMixtureMeasures, gaussianMixtureModeShift } from '@piflow/eval';
import type { ModelManifest, StoredModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { readFloats } from './reads';
import { SAMPLE_CHUNK_ROWS, sampleModel } from './sampling';

export interface MixtureRow {
  model: string;
  nfe: number;
  samples: number;
  /** Coverage TV of the model's samples against the mixture weights. */
  coverageTV: number;
  /** The same TV of as many exact draws from the mixture: the noise floor at this sample count. */
  dataTV: number;
  /** Spread inside modes (1 = the data's). */
  spread: number;
  /** Mean log-density of the samples minus that of the exact draws (nats). */
  logDensityGap: number;
  /** Component frequencies' TV against the teacher's ODE from the same noise, and the share of rows moved. */
  tvAgainstODE: number;
  movedFromODE: number;
  msPer1000: number;
}

export interface MixtureEvalOptions {
  count: number;
  seed: number;
  /** Midpoint-rule steps of the teacher's ODE that the samples are compared with row by row. */
  referenceSteps: number;
  nfe?: number;
  teacherSteps?: number;
  familyOptions: Record<string, unknown>;
  families?: PolicyRegistry;
  onProgress?: (done: number) => void;
}

/**
 * Measures a model (student or teacher) of vector samples against the exact Gaussian mixture it learnt:
 * coverage, spread and log-density of `count` samples from noise seed `seed`, beside `count` exact draws (seed
 * + 1), and each row's mode against the teacher's ODE from the same noise. Works in chunks, so a million rows
 * fit in memory.
 */
export async function evaluateAgainstMixture(
  name: string,
  model: StoredModel,
  manifest: ModelManifest,
  flow: AnalyticGMFlow,
  teacher: Teacher,
  o: MixtureEvalOptions,
): Promise<MixtureRow> {
  const D = flow.dimension;
  const noiseRandom = createRandom(o.seed);
  const samples = new Float32Array(o.count * D);
  const reference = new Float32Array(o.count * D);
  let nfe = 0;
  let seconds = 0;
  for (let start = 0; start < o.count; start += SAMPLE_CHUNK_ROWS) {
    const rows = Math.min(SAMPLE_CHUNK_ROWS, o.count - start);
    const noise = noiseRandom.normalTensor([rows, D]);
    try {
      const sampled = await sampleModel(model, manifest, noise, {
        nfe: o.nfe,
        teacherSteps: o.teacherSteps,
        familyOptions: o.familyOptions,
        families: o.families,
      });
      nfe = sampled.nfe;
      seconds += sampled.seconds;
      samples.set(await readFloats(sampled.x), start * D);
      sampled.x.dispose();
      const ode = await sampleTeacher(teacher, noise, {
        numInferenceSteps: o.referenceSteps,
        solver: 'midpoint',
      });
      reference.set(await readFloats(ode), start * D);
      ode.dispose();
    } finally {
      noise.dispose();
    }
    o.onProgress?.(start + rows);
  }
  const exact = tf.tidy(() => flow.sample(o.count, createRandom(o.seed + 1)).x0);
  const exactValues = await readFloats(exact);
  exact.dispose();
  const m = gaussianMixtureMeasures(flow, samples);
  const d = gaussianMixtureMeasures(flow, exactValues);
  const shift = gaussianMixtureModeShift(flow, samples, reference);
  return {
    model: name,
    nfe,
    samples: o.count,
    coverageTV: m.coverageTV,
    dataTV: d.coverageTV,
    spread: m.spread,
    logDensityGap: m.logDensity - d.logDensity,
    tvAgainstODE: shift.tv,
    movedFromODE: shift.moved,
    msPer1000: (seconds * 1000 * 1000) / o.count,
  };
}

export function formatMixtureTable(rows: MixtureRow[]): string {
  const lines = [
    "| model | NFE | samples | coverage TV | exact draws' TV | spread | Δlog-density | TV against the teacher ODE | modes ≠ the teacher ODE | ms / 1000 samples |",
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.model} | ${r.nfe} | ${r.samples} | ${r.coverageTV.toFixed(4)} | ${r.dataTV.toFixed(4)} | ${r.spread.toFixed(3)} | ${r.logDensityGap.toFixed(3)} | ${r.tvAgainstODE.toFixed(4)} | ${(100 * r.movedFromODE).toFixed(2)} % | ${r.msPer1000.toFixed(0)} |`,
    );
  }
  return lines.join('\n');
}
