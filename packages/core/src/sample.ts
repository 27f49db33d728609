import * as tf from '@tensorflow/tfjs-core';
import { sigmaVector } from './conventions';
import { InvalidArgumentError } from './errors';
import { resolveFamilyOptions } from './family-options';
import { type FlowMapSchedule, flowMapSchedule, flowMapStep, type StochasticityH } from './flow-map-schedule';
import type { PolicyFamily } from './policy-family';
import { createRandom, type Random } from './random';
import { rollout } from './rollout';
import type { Condition, Student, Teacher } from './types';
import { assertNumber, assertOneOf, assertTensor, describeValue } from './validation';

export interface SampleStepInfo {
  /** Step index (0-based). */
  step: number;
  numInferenceSteps: number;
  sigmaSrc: number;
  sigmaDst: number;
}

export interface SampleOptions {
  /** Number of network evaluations (≥ 1). A student trained at n steps runs at ≥ n (elastic inference). */
  numInferenceSteps: number;
  /** Raw size of the last step relative to the others, in (0, 1] (default 1). */
  finalStepSizeScale?: number;
  /** Time-warp shift of the schedule and the rollouts (default 1). */
  shift?: number;
  /**
   * The family's sampling options (declared in `family.sampling.options`, e.g. GM's `{ temperature: 'auto' }`),
   * validated against the declaration and turned into `create` options for each step by the family.
   */
  familyOptions?: Record<string, unknown>;
  /** Euler substeps per unit raw time in each rollout (default 128). */
  substeps?: number;
  /** Conditioning passed to the student. */
  condition?: Condition;
  /** Sampler stochasticity (default 0, the ODE). */
  h?: StochasticityH;
  /** Noise source for h > 0; or give `seed`. */
  random?: Random;
  seed?: number;
  /** Extra options for `family.create` (e.g. DX shift and segment size). */
  policyOptions?: Record<string, unknown>;
  /** Use fused rollout kernels where available (default true). */
  fused?: boolean;
  /** Called after each step. */
  onStep?: (info: SampleStepInfo) => void;
}

/**
 * Few-step π-Flow sampling: at each step the student is evaluated once at (x, σ_src), its output becomes a
 * policy, the policy is rolled out to σ_dst with cheap substeps, and the FlowMap step re-noises to the next
 * σ (identity for the ODE). Returns x at σ = 0; `noise` is not disposed.
 */
export function sample<P>(
  student: Student<P>,
  family: PolicyFamily<P, unknown>,
  noise: tf.Tensor,
  options: SampleOptions,
): tf.Tensor {
  if (!student || typeof student.predict !== 'function') {
    throw new InvalidArgumentError(
      'student',
      'a Student (an object with predict(x, sigma, condition))',
      describeValue(student),
    );
  }
  if (!family || typeof family.create !== 'function') {
    throw new InvalidArgumentError('family', 'a PolicyFamily value', describeValue(family));
  }
  if (student.family !== family.name) {
    throw new InvalidArgumentError(
      'family',
      `the family "${student.family}" the student outputs`,
      `"${family.name}"`,
    );
  }
  assertTensor('noise', noise, { minRank: 2 });
  const { substeps = 128, fused = true } = options;
  assertNumber('substeps', substeps, { min: 1, integer: true });
  const schedule = flowMapSchedule(options);
  const familyOptions = resolveFamilyOptions(
    'options.familyOptions',
    family.sampling?.options,
    options.familyOptions,
  );
  const random = options.random ?? (schedule.h === 0 ? undefined : createRandom(options.seed));
  const batch = noise.shape[0]!;
  let x = noise.clone();
  try {
    for (let i = 0; i < schedule.numInferenceSteps; i++) {
      x = sampleStep(x, i);
      const [sigmaSrc, sigmaDst] = [schedule.sigmas[i]!, schedule.sigmasDst[i]!];
      options.onStep?.({ step: i, numInferenceSteps: schedule.numInferenceSteps, sigmaSrc, sigmaDst });
    }
  } catch (error) {
    x.dispose(); // a student or family that rejects its input leaves nothing behind
    throw error;
  }
  return x;

  /** One step: student once at (x, σ_src), its policy rolled out to σ_dst, then the FlowMap step; consumes x. */
  function sampleStep(x: tf.Tensor, i: number): tf.Tensor {
    const sigmaSrc = schedule.sigmas[i]!;
    const sigmaDst = schedule.sigmasDst[i]!;
    const next = tf.tidy(() => {
      const sigma = sigmaVector(sigmaSrc, batch);
      const params = student.predict(x, sigma, options.condition);
      const stepOptions = family.sampling?.policyOptions(familyOptions, {
        step: i,
        numInferenceSteps: schedule.numInferenceSteps,
        isLast: i === schedule.numInferenceSteps - 1,
      });
      const policy = family.create(params, x, sigmaSrc, { ...options.policyOptions, ...stepOptions });
      try {
        const xDst = rollout(policy, x, { sigmaSrc, sigmaDst, substeps, shift: schedule.shift, fused });
        return flowMapStep(xDst, i, schedule, random);
      } finally {
        policy.dispose();
      }
    });
    x.dispose();
    return next;
  }
}

export interface SampleTeacherOptions {
  /** ODE steps, ≥ 1 (the same name as in {@link SampleOptions}): as many teacher evaluations with Euler, twice as many with the midpoint rule. */
  numInferenceSteps: number;
  /**
   * 'euler' (default, the samplers of the reference code: first order) or 'midpoint' (explicit midpoint
   * rule, second order: the teacher's ODE solution to 1e-4 in far fewer evaluations, as a reference).
   */
  solver?: 'euler' | 'midpoint';
  /** Time-warp shift of the step grid (default: the teacher's metadata shift, else 1). */
  shift?: number;
  /** Raw size of the last step relative to the others (default 1: uniform). */
  finalStepSizeScale?: number;
  condition?: Condition;
  onStep?: (info: SampleStepInfo) => void;
}

/** `numSteps` was the teacher samplers' name for `numInferenceSteps`: given, it throws naming the new one. */
function rejectRenamedStepOption(options: unknown): void {
  if (options !== null && typeof options === 'object' && 'numSteps' in options) {
    throw new InvalidArgumentError(
      'options.numSteps',
      'options.numInferenceSteps (numSteps was renamed to numInferenceSteps, as in sample())',
      describeValue((options as { numSteps: unknown }).numSteps),
    );
  }
}

/** The σ grid an N-step teacher Euler sampler walks (the ODE FlowMap grid, ending at 0). */
export function teacherSigmas(options: SampleTeacherOptions & { shift: number }): FlowMapSchedule['sigmas'] {
  rejectRenamedStepOption(options);
  return flowMapSchedule({
    numInferenceSteps: options.numInferenceSteps,
    finalStepSizeScale: options.finalStepSizeScale,
    shift: options.shift,
  }).sigmas;
}

/**
 * The teacher's own ODE sampler on the warped grid: Euler x ← x + u(x, σ_i)·(σ_{i+1} − σ_i), or the midpoint
 * rule x ← x + u(x + u(x, σ_i)·(σ_m − σ_i), σ_m)·(σ_{i+1} − σ_i) with σ_m = (σ_i + σ_{i+1})/2.
 */
export async function sampleTeacher(
  teacher: Teacher,
  noise: tf.Tensor,
  options: SampleTeacherOptions,
): Promise<tf.Tensor> {
  if (!teacher || typeof teacher.velocity !== 'function') {
    throw new InvalidArgumentError(
      'teacher',
      'a Teacher (an object with velocity(x, sigma, condition))',
      describeValue(teacher),
    );
  }
  assertTensor('noise', noise, { minRank: 2 });
  rejectRenamedStepOption(options);
  const solver = options.solver ?? 'euler';
  assertOneOf('options.solver', solver, ['euler', 'midpoint']);
  const shift = options.shift ?? teacher.metadata.shift ?? 1;
  const sigmas = teacherSigmas({ ...options, shift });
  let x = noise.clone();
  try {
    for (let i = 0; i < sigmas.length - 1; i++) {
      const [a, b] = [sigmas[i]!, sigmas[i + 1]!];
      let u = await teacher.velocity(x, a, options.condition);
      if (solver === 'midpoint') {
        const m = (a + b) / 2;
        const half = tf.tidy(() => tf.add(x, tf.mul(u, m - a)));
        u.dispose();
        try {
          u = await teacher.velocity(half, m, options.condition);
        } finally {
          half.dispose();
        }
      }
      const next = tf.tidy(() => tf.add(x, tf.mul(u, b - a)));
      u.dispose();
      x.dispose();
      x = next;
      options.onStep?.({
        step: i,
        numInferenceSteps: sigmas.length - 1,
        sigmaSrc: sigmas[i]!,
        sigmaDst: sigmas[i + 1]!,
      });
    }
  } catch (error) {
    x.dispose(); // a teacher that fails (a remote one, say) leaves nothing behind
    throw error;
  }
  return x;
}
