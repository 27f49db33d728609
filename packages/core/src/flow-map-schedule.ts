import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors';
import type { Random } from './random';
import { unwarp, warp } from './time-warp';
import { assertNumber, assertTensor, describeValue } from './validation';

/** Stochasticity of the few-step sampler: 0 = ODE (deterministic), h > 0 = SDE, 'inf' = full re-noising. */
export type StochasticityH = number | 'inf';

export interface FlowMapScheduleOptions {
  /** Number of steps (network evaluations), ≥ 1. */
  numInferenceSteps: number;
  /** The last step is this many times the others in raw time (0, 1]; 0.5 for FLUX/Qwen, 1 for ImageNet. */
  finalStepSizeScale?: number;
  /** Time-warp shift (> 0). */
  shift?: number;
  /** Stochasticity: 0 (ODE, default), a positive number, or 'inf'. */
  h?: StochasticityH;
}

/** A few-step schedule: where each step starts, where its policy rollout ends, and how it re-noises. */
export interface FlowMapSchedule {
  readonly numInferenceSteps: number;
  readonly shift: number;
  readonly h: StochasticityH;
  /** Raw start times r_i (length N). */
  readonly rawTimes: readonly number[];
  /** σ_i = warp(r_i), then 0 (length N + 1). */
  readonly sigmas: readonly number[];
  /** Where step i's policy rollout ends (σ_dst_i ≤ σ_{i+1}; equal to it for the ODE), length N. */
  readonly sigmasDst: readonly number[];
  /** Re-noising factor m_i of each step (1 for the ODE). */
  readonly m: readonly number[];
}

const EPS = 1e-6;

/**
 * The FlowMap schedule of few-step sampling. Raw start times are
 *   r_i = 1 − i / (N − 1 + f),  i = 0 … N − 1        (f = finalStepSizeScale)
 * so every step spans Δ = 1/(N − 1 + f) in raw time except the last, which spans f·Δ. σ_i = warp(r_i, shift)
 * and σ_N = 0. For h > 0 the policy is rolled to σ_dst ≤ σ_to and the step re-noises to σ_to
 * (see {@link flowMapStep}):
 *   m = 1 (h = 0),  0 (h = 'inf'),  (σ_to·α_src / (σ_src·α_to))^(h²) otherwise;
 *   σ_dst = σ_to·m / (α_to + σ_to·m),   α = 1 − σ.
 */
export function flowMapSchedule(options: FlowMapScheduleOptions): FlowMapSchedule {
  const { numInferenceSteps: n, finalStepSizeScale: f = 1, shift = 1, h = 0 } = options;
  assertNumber('numInferenceSteps', n, { min: 1, integer: true });
  assertNumber('finalStepSizeScale', f, { min: 0, max: 1, minExclusive: true });
  assertNumber('shift', shift, { min: 0, minExclusive: true });
  if (h !== 'inf') assertNumber('h', h, { min: 0 });
  const rawTimes: number[] = [];
  for (let i = 0; i < n; i++) rawTimes.push(Math.max(1 - i / (n - 1 + f), 0));
  const sigmas = [...rawTimes.map((r) => warp(r, shift)), 0];
  const m: number[] = [];
  const sigmasDst: number[] = [];
  for (let i = 0; i < n; i++) {
    const sigmaSrc = sigmas[i]!;
    const sigmaTo = sigmas[i + 1]!;
    const alphaTo = 1 - sigmaTo;
    let mi: number;
    if (h === 'inf') mi = 0;
    else if (h === 0) mi = 1;
    else mi = ((sigmaTo * (1 - sigmaSrc)) / Math.max(sigmaSrc * alphaTo, EPS)) ** (h * h);
    m.push(mi);
    sigmasDst.push((sigmaTo * mi) / Math.max(alphaTo + sigmaTo * mi, EPS));
  }
  return { numInferenceSteps: n, shift, h, rawTimes, sigmas, sigmasDst, m };
}

/**
 * The scheduler step after step `index`'s rollout reached x at σ_dst: re-noise to σ_to with
 *   x_next = (α_to + σ_to·m)·x_dst + σ_to·√(1 − m²)·ε.
 * For the ODE (m = 1, σ_dst = σ_to) it returns a copy of x_dst and draws no noise.
 */
export function flowMapStep(
  xDst: tf.Tensor,
  index: number,
  schedule: FlowMapSchedule,
  random?: Random,
): tf.Tensor {
  assertTensor('xDst', xDst, { minRank: 1 });
  assertNumber('index', index, { min: 0, max: schedule.numInferenceSteps - 1, integer: true });
  const m = schedule.m[index]!;
  const sigmaTo = schedule.sigmas[index + 1]!;
  if (m === 1 || sigmaTo === 0) return xDst.clone();
  if (!random) {
    throw new InvalidArgumentError(
      'random',
      'a Random generator for a stochastic (h > 0) schedule',
      describeValue(random),
    );
  }
  const scale = 1 - sigmaTo + sigmaTo * m;
  const noiseScale = sigmaTo * Math.sqrt(Math.max(1 - m * m, 0));
  return tf.tidy(() => {
    const noise = random.normalTensor(xDst.shape);
    return tf.add(tf.mul(xDst, scale), tf.mul(noise, noiseScale));
  });
}

/** Raw time of a σ under a shift (re-exported convenience for schedule users). */
export function rawTimeOf(sigma: number, shift: number): number {
  return unwarp(sigma, shift);
}
