import {
  type AdamWOptions,
  assertNumber,
  type Condition,
  type EMAOptions,
  type FamilyOptionValues,
  InvalidArgumentError,
  LOSS_WEIGHTINGS,
  type LossWeighting,
  type PolicyFamily,
  type Random,
  resolveFamilyOptions,
  type Teacher,
  type TrainableStudent,
} from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { SegmentSampling } from './segments';

/** A batch of clean data for data-dependent π-ID. */
export interface DataBatch {
  /** Clean samples x0, [B, …] (the trainer disposes them). */
  x0: tf.Tensor;
  /** Their conditioning (the trainer disposes its tensors). */
  condition?: Condition;
}

export interface PiIDTrainerOptions<P = unknown> {
  student: TrainableStudent<P>;
  family: PolicyFamily<P, any>;
  teacher: Teacher;
  /**
   * Clean data for the data-dependent mode (each sample trains the step its σ_src falls in). Omit it and give
   * `sampleShape` for the data-free multi-step mode, which starts from pure noise and walks the student's steps.
   */
  data?: (batchSize: number, random: Random) => DataBatch | Promise<DataBatch>;
  /** Shape of one sample, for the data-free mode. */
  sampleShape?: readonly number[];
  /** Conditioning for data-free batches (e.g. random labels). */
  conditions?: (batchSize: number, random: Random) => Condition | undefined;
  batchSize: number;
  /** The number of steps the student is trained for (it runs at that many or more). */
  numInferenceSteps: number;
  finalStepSizeScale?: number;
  /**
   * Where the student is trained (data-dependent mode): `'grid'` at its N step starts (the reference; default),
   * `'continuous'` at any σ (each segment min(Δ, r) long), `'mixed'` either with probability ½ — for students
   * sampled at other step counts too.
   */
  segmentSampling?: SegmentSampling;
  shift?: number;
  /** Rollout substeps per unit raw time (default 128). */
  substeps?: number;
  /** Intermediate states per segment (default 2). */
  numIntermediateStates?: number;
  /** Student window in substeps for the window-averaged velocity (default 0: local velocity). */
  windowSubsteps?: number;
  /** Trajectory mixing: teacher ratio decays 1 → 0 over this many iterations (default 0: off). */
  numDecayIters?: number;
  /**
   * The family's training options (declared in `family.training.options`, defaults from there), e.g. GM's
   * `{ dropout: 0.05 }` (component dropout on the detached rollout policy); the family turns them into
   * `create` options.
   */
  familyOptions?: Record<string, unknown>;
  /** Loss multiplier (reference: 3 for ImageNet, 30 for FLUX). Default 1. */
  lossScale?: number;
  /**
   * How the velocity errors at the intermediate states are weighted: `'velocity'` (the reference: plain L2 on
   * u), `'sigma'` (times σ), `'x0'` (times σ², i.e. L2 on the implied x0) or `'sigma3'` (times σ³: the x0
   * loss times σ). Default: the family's `training.lossWeighting`, else `'velocity'`.
   */
  lossWeighting?: LossWeighting;
  /**
   * Micro-batches of `batchSize` whose gradients are averaged into one update (default 1): an update then sees
   * `gradientAccumulation × batchSize` samples while memory holds one micro-batch.
   */
  gradientAccumulation?: number;
  optimizer?: AdamWOptions;
  /** EMA of the student (default Karras γ = 7); false to disable. */
  ema?: EMAOptions | false;
  seed?: number;
  /** Consecutive non-finite losses tolerated (skipped) before the run aborts (default 10). */
  maxNonFiniteSteps?: number;
  /** Checkpoints: folder, interval in steps, how many to keep. */
  checkpoint?: { dir: string; every?: number; keep?: number };
  /** Called after every step. */
  onStep?: (metrics: StepMetrics) => void;
  /** Called when a corrupted checkpoint is skipped during resume. */
  onWarning?: (message: string) => void;
  /** Free-form description saved in checkpoints. */
  metadata?: Record<string, unknown>;
}

export type { LossWeighting };

export interface StepMetrics {
  /** Optimiser steps completed after this one. */
  step: number;
  loss: number;
  learningRate: number;
  gradientNorm: number;
  teacherRatio: number;
  /** True when the loss was not finite and the update was skipped. */
  skipped: boolean;
  seconds: number;
}

export interface TrainOptions {
  /** Stops after the step in flight; a checkpoint is saved when a checkpoint folder is set. */
  signal?: AbortSignal;
}

/** The numeric settings of a run with their defaults filled in. */
export type ResolvedPiIDOptions = Required<
  Pick<
    PiIDTrainerOptions,
    | 'batchSize'
    | 'numInferenceSteps'
    | 'finalStepSizeScale'
    | 'shift'
    | 'substeps'
    | 'numIntermediateStates'
    | 'windowSubsteps'
    | 'numDecayIters'
    | 'lossScale'
    | 'gradientAccumulation'
    | 'maxNonFiniteSteps'
  >
>;

/**
 * Checks every option of a π-ID run (naming the argument and the expected value) and fills in the defaults;
 * the family's training options are resolved against its declared specification.
 */
export function resolvePiIDOptions<P>(options: PiIDTrainerOptions<P>): {
  o: ResolvedPiIDOptions;
  familyOptions: FamilyOptionValues;
  lossWeighting: LossWeighting;
} {
  const { student, family, teacher } = options;
  if (!student || typeof student.predict !== 'function' || !Array.isArray(student.variables)) {
    throw new InvalidArgumentError(
      'student',
      'a TrainableStudent ({ family, predict, variables })',
      typeof student,
    );
  }
  if (!family || typeof family.create !== 'function') {
    throw new InvalidArgumentError('family', 'a PolicyFamily value', typeof family);
  }
  if (student.family !== family.name) {
    throw new InvalidArgumentError(
      'family',
      `the family "${student.family}" the student outputs`,
      `"${family.name}"`,
    );
  }
  if (!teacher || typeof teacher.velocity !== 'function') {
    throw new InvalidArgumentError(
      'teacher',
      'a Teacher ({ velocity(x, sigma, condition) })',
      typeof teacher,
    );
  }
  if (!options.data && !options.sampleShape) {
    throw new InvalidArgumentError(
      'data',
      'a data function, or sampleShape for the data-free mode',
      'neither',
    );
  }
  const o: ResolvedPiIDOptions = {
    batchSize: options.batchSize,
    numInferenceSteps: options.numInferenceSteps,
    finalStepSizeScale: options.finalStepSizeScale ?? 1,
    shift: options.shift ?? 1,
    substeps: options.substeps ?? 128,
    numIntermediateStates: options.numIntermediateStates ?? 2,
    windowSubsteps: options.windowSubsteps ?? 0,
    numDecayIters: options.numDecayIters ?? 0,
    lossScale: options.lossScale ?? 1,
    gradientAccumulation: options.gradientAccumulation ?? 1,
    maxNonFiniteSteps: options.maxNonFiniteSteps ?? 10,
  };
  assertNumber('batchSize', o.batchSize, { min: 1, integer: true });
  assertNumber('numInferenceSteps', o.numInferenceSteps, { min: 1, integer: true });
  assertNumber('finalStepSizeScale', o.finalStepSizeScale, { min: 0, max: 1, minExclusive: true });
  assertNumber('shift', o.shift, { min: 0, minExclusive: true });
  assertNumber('substeps', o.substeps, { min: 1, integer: true });
  assertNumber('numIntermediateStates', o.numIntermediateStates, { min: 1, integer: true });
  assertNumber('windowSubsteps', o.windowSubsteps, { min: 0, integer: true });
  assertNumber('numDecayIters', o.numDecayIters, { min: 0, integer: true });
  const familyOptions = resolveFamilyOptions(
    'familyOptions',
    family.training?.options,
    options.familyOptions,
  );
  assertNumber('lossScale', o.lossScale, { min: 0, minExclusive: true });
  assertNumber('gradientAccumulation', o.gradientAccumulation, { min: 1, integer: true });
  if (
    options.segmentSampling !== undefined &&
    !['grid', 'continuous', 'mixed'].includes(options.segmentSampling)
  ) {
    throw new InvalidArgumentError(
      'segmentSampling',
      "'grid', 'continuous' or 'mixed'",
      JSON.stringify(options.segmentSampling),
    );
  }
  assertNumber('maxNonFiniteSteps', o.maxNonFiniteSteps, { min: 0, integer: true });
  if (options.sampleShape) {
    options.sampleShape.forEach((d, i) => assertNumber(`sampleShape[${i}]`, d, { min: 1, integer: true }));
  }
  if (options.checkpoint) {
    if (typeof options.checkpoint.dir !== 'string' || !options.checkpoint.dir) {
      throw new InvalidArgumentError('checkpoint.dir', 'a folder path', String(options.checkpoint.dir));
    }
    assertNumber('checkpoint.every', options.checkpoint.every ?? 100, { min: 1, integer: true });
  }
  const lossWeighting = options.lossWeighting ?? family.training?.lossWeighting ?? 'velocity';
  if (!(LOSS_WEIGHTINGS as readonly string[]).includes(lossWeighting)) {
    throw new InvalidArgumentError(
      'lossWeighting',
      `one of ${LOSS_WEIGHTINGS.map((w) => `'${w}'`).join(', ')}`,
      JSON.stringify(lossWeighting),
    );
  }
  return { o, familyOptions, lossWeighting };
}

/** The loss weight of a state at σ. */
export function lossWeight(weighting: LossWeighting): (sigma: number) => number {
  switch (weighting) {
    case 'sigma':
      return (s) => s;
    case 'x0':
      return (s) => s * s;
    case 'sigma3':
      return (s) => s * s * s;
    default:
      return () => 1;
  }
}
