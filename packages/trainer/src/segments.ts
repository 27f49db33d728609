import { type Random, warp } from '@piflow/core';

/** One training segment per sample: the step it belongs to and its raw-time bounds. */
export interface Segments {
  /** Raw start time of each sample's step. */
  rawSrc: Float64Array;
  /** Raw length of each sample's step. */
  rawLength: Float64Array;
  /** σ_src = warp(rawSrc). */
  sigmaSrc: Float32Array;
}

const EPS = 1e-4;

/**
 * Where π-ID trains the student: `'grid'` at the start of each of the N steps (the reference), `'continuous'`
 * at any raw time r ~ U(0, 1], each sample's segment reaching min(Δ, r) further: the student is then a policy
 * valid for a step of size Δ from any σ, which is what sampling at other step counts (elastic inference) asks.
 * `'mixed'` draws each sample's start from one or the other with probability ½.
 */
export type SegmentSampling = 'grid' | 'continuous' | 'mixed';

/**
 * Samples which step of an N-step schedule each sample trains (data-dependent π-ID, reference `sample_t`):
 * r ~ U(0, 1], k = clamp(⌈r/Δ + 1 − f⌉, 1, N), r_src = (k − 1 + f)·Δ, segment = f·Δ for k = 1 else Δ, with
 * Δ = 1/(N − 1 + f). Steps are drawn in proportion to their raw length, and r_src lies on the sampler's grid.
 * With `mode = 'continuous'`, r_src = r and the segment is min(Δ, r).
 */
export function sampleSegments(
  batch: number,
  numInferenceSteps: number,
  finalStepSizeScale: number,
  shift: number,
  random: Random,
  mode: SegmentSampling = 'grid',
): Segments {
  const f = Math.max(finalStepSizeScale, EPS);
  const delta = 1 / (numInferenceSteps - 1 + f);
  const rawSrc = new Float64Array(batch);
  const rawLength = new Float64Array(batch);
  const sigmaSrc = new Float32Array(batch);
  for (let b = 0; b < batch; b++) {
    const r = Math.max(1 - random.uniform(), EPS);
    if (mode === 'continuous' || (mode === 'mixed' && random.uniform() < 0.5)) {
      rawSrc[b] = r;
      rawLength[b] = Math.min(delta, r);
      sigmaSrc[b] = warp(r, shift);
      continue;
    }
    const k = Math.min(Math.max(Math.ceil(r / delta + 1 - f), 1), numInferenceSteps);
    rawSrc[b] = Math.min(Math.max((k - 1 + f) * delta, EPS), 1);
    rawLength[b] = k === 1 ? f * delta : delta;
    sigmaSrc[b] = warp(rawSrc[b]!, shift);
  }
  return { rawSrc, rawLength, sigmaSrc };
}

/**
 * Raw-time offsets of the intermediate states of one segment (reference `piid_segment`): M student
 * increments s (sorted uniforms over (1 − ratio)·L, differenced) and M teacher increments t (a uniform
 * partition of ratio·L), where L = segment − window. State k is reached by rolling the student s_k further,
 * then the teacher takes one Euler step of t_k.
 */
export function intermediateOffsets(
  numStates: number,
  length: number,
  teacherRatio: number,
  random: Random,
): { student: Float64Array; teacher: Float64Array } {
  const studentCut = Array.from(
    { length: numStates },
    () => random.uniform() * (1 - teacherRatio) * length,
  ).sort((a, b) => a - b);
  const teacherCut = Array.from({ length: numStates - 1 }, () => random.uniform()).sort((a, b) => a - b);
  const student = new Float64Array(numStates);
  const teacher = new Float64Array(numStates);
  for (let k = 0; k < numStates; k++) {
    student[k] = studentCut[k]! - (k === 0 ? 0 : studentCut[k - 1]!);
    const hi = k === numStates - 1 ? 1 : teacherCut[k]!;
    const lo = k === 0 ? 0 : teacherCut[k - 1]!;
    teacher[k] = (hi - lo) * teacherRatio * length;
  }
  return { student, teacher };
}

/** Teacher ratio of scheduled trajectory mixing: 1 → 0 linearly over `numDecayIters`, 0 when disabled. */
export function teacherRatioAt(iteration: number, numDecayIters: number): number {
  if (numDecayIters <= 0) return 0;
  return 1 - Math.min(iteration, numDecayIters) / numDecayIters;
}
