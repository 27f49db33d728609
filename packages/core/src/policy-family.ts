import type * as tf from '@tensorflow/tfjs-core';
import type { Sigma } from './conventions';
import type { Random } from './random';
import type { Policy } from './types';

/** π-ID loss weightings: each intermediate state's velocity error times 1, σ, σ² (the implied x0's) or σ³. */
export const LOSS_WEIGHTINGS = ['velocity', 'sigma', 'x0', 'sigma3'] as const;
export type LossWeighting = (typeof LOSS_WEIGHTINGS)[number];

/**
 * The version of the policy plugin contract this core implements. v2 (this one) added to v1's
 * `paramShapes`/`create`: `packageName`, `studentHead`, `training`, `sampling` and `fusedRollout`, so that
 * the model builder, model files, the trainer, the sampler, the CLI and the kernels learn everything they need
 * about a family from the family value itself. v1 families (only `name`, `paramShapes`, `create`) are
 * rejected by the registry with a message naming what v2 adds.
 */
export const POLICY_SPECIFICATION_VERSION = 'v2';

/** What a family needs to know to shape a student's output head. */
export interface ParamShapeOptions {
  /** Shape of x: [B, ...positions, C]. */
  shape: readonly number[];
  [option: string]: unknown;
}

/**
 * A declared option of a family (a head, training or sampling option). Declarations are data, so the CLI can
 * list them in its help, parse them from flags or config files, and every caller validates them the same way
 * (`resolveFamilyOptions`).
 */
export interface FamilyOptionSpec {
  /** One line for help texts. */
  description: string;
  /** 'number', 'integer', 'string' (one of `choices`), or 'number-or-auto' (a number or the string 'auto'). */
  type: 'number' | 'integer' | 'string' | 'number-or-auto';
  /** Used when the option is not given (omit: the option stays unset). */
  default?: number | string;
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  /** Allowed values of a 'string' option. */
  choices?: readonly string[];
}

export type FamilyOptionSpecs = Readonly<Record<string, FamilyOptionSpec>>;

/** Resolved option values, keyed by option name. */
export type FamilyOptionValues = Readonly<Record<string, number | string>>;

/** How one parameter tensor of a student's output comes out of its head (see {@link StudentHeadSpec}). */
export interface HeadOutputSpec {
  /**
   * 'position': a dense layer over the backbone's per-position features, one block of `shape` per position;
   * 'sample': a small MLP (SiLU → dense(hiddenDim) → SiLU → dense) over the detached conditioning embedding
   * and the detached position-pooled features, one block per batch item (its gradient does not reach the
   * backbone).
   */
  per: 'position' | 'sample';
  /** Shape of one block, e.g. [K, C] (GM means), [K] (GM log-weights), [] (a scalar per sample). */
  shape: readonly number[];
  /**
   * Where a per-position block goes: 'positions-first' (default) gives [B, …positions, …shape];
   * 'block-first' moves the block's first axis after the batch axis: [B, shape[0], …positions, …shape[1:]]
   * (DX's grid [B, N, …positions, C]).
   */
  layout?: 'positions-first' | 'block-first';
  /** Applied over the last axis of the output. */
  activation?: 'logSoftmax';
  /** Initial weights of the (last) dense layer: kernel Glorot-uniform (default) or zeros; bias zeros (default), N(0, std²) or a constant. */
  init?: {
    kernel?: 'glorot' | 'zeros';
    bias?: 'zeros' | { normal: number } | { constant: number };
  };
  /** Hidden width of a 'sample' output's MLP (default 128). */
  hiddenDim?: number;
  /**
   * How the output starts when the student is initialised from a teacher flow model's output layer
   * (features F → C velocity): 'replicate' tiles the teacher's projection over every block entry (the block
   * must end in C), adding N(0, noiseScale²) to the bias when `noise` is true; 'first' puts it in the first
   * entry and zeros elsewhere; 'reset' (default) re-applies `init` to the last layer.
   */
  fromTeacher?: 'replicate' | 'replicate-with-noise' | 'first' | 'reset';
  /** Name prefix of the output's variables in model files (default `head/<parameter name>`). */
  layerName?: string;
}

/** What a family asks of a student network's head for one position layout. */
export interface StudentHeadSpec {
  /** Value of the `space` field the head adds to its output (e.g. 'u'); omitted: no `space` field. */
  space?: string;
  /** One entry per parameter tensor, in variable order. */
  outputs: Readonly<Record<string, HeadOutputSpec>>;
  /**
   * Options `create` must get together with this student's parameters (intrinsic to how the student was
   * trained, e.g. DX's shift and segment size); recorded in model files and passed by the trainer and sampler.
   */
  policyOptions?: Readonly<Record<string, unknown>>;
}

/** What a family's `studentHead.build` is told. */
export interface StudentHeadContext {
  /** Channels C of x. */
  channels: number;
  /** Resolved head options (declared in `studentHead.options`). */
  options: FamilyOptionValues;
  /** Time-warp shift the student will be trained and sampled with. */
  shift: number;
  /** Raw-time span of one step of the schedule the student is trained for: 1/(N − 1 + finalStepSizeScale). */
  segmentSize: number;
}

/** What a family's `training.policyOptions` is told. */
export interface TrainingPolicyContext {
  /** The trainer's random source (for stochastic regularisers such as GM's component dropout). */
  random: Random;
}

/** What a family's `sampling.policyOptions` is told for each step of the few-step sampler. */
export interface SamplingPolicyContext {
  /** Step index (0-based). */
  step: number;
  numInferenceSteps: number;
  /** Whether this is the last step. */
  isLast: boolean;
}

/**
 * A family's fused rollout: one tfjs kernel name, under which each backend registers its kernel (as tfjs does
 * for its ops). The family may provide kernels for some backends itself (registered on first use, never at
 * import); backend packages register theirs under the same name.
 */
export interface FusedRolloutKernel {
  /** The tfjs kernel name, e.g. 'PiflowGMFusedRollout'. */
  readonly kernelName: string;
  /** Kernels the family provides itself, by tfjs backend name (e.g. { cpu, wasm }). */
  readonly kernels?: Readonly<Record<string, tf.KernelFunc>>;
}

/** One call of a family's fused rollout kernel, as a policy prepares it (see `Policy.fusedRolloutCall`). */
export interface FusedRolloutCall {
  readonly kernel: FusedRolloutKernel;
  readonly inputs: tf.NamedTensorMap;
  readonly attrs: tf.NamedAttrMap;
}

/**
 * A policy family: the plugin spec (version {@link POLICY_SPECIFICATION_VERSION}). Families are values,
 * combined in an explicit registry (`createPolicyRegistry({ gm, dx, myFamily })`) that the model builder,
 * model loading, the trainer, the sampler and the CLI ask; nothing outside a family's package names it.
 */
export interface PolicyFamily<TParams = unknown, TOptions = unknown> {
  readonly specificationVersion: 'v2';
  /** Unique name, e.g. 'gm'. */
  readonly name: string;
  /** The npm package that provides the family (model files record it so loaders can say what to install). */
  readonly packageName?: string;
  /** One line for help texts. */
  readonly description?: string;
  /** Shapes of the parameter tensors a student must output for x of the given shape. */
  paramShapes(options: ParamShapeOptions): Record<string, number[]>;
  /** Builds a policy from parameters at (xSrc, sigmaSrc). Takes no ownership of `params`. */
  create(params: TParams, xSrc: tf.Tensor, sigmaSrc: Sigma, options?: TOptions): Policy;
  /** What a student head outputs for this family (so `@piflow/models` builds a head for any family). */
  readonly studentHead?: {
    readonly options: FamilyOptionSpecs;
    build(context: StudentHeadContext): StudentHeadSpec;
    /** A short name for a student with these head options, for tables and pages (e.g. 'GM K=8'). */
    label?(options: FamilyOptionValues): string;
  };
  /** Training-time options (e.g. GM's component dropout), turned into `create` options for the rollout policy. */
  readonly training?: {
    readonly options: FamilyOptionSpecs;
    policyOptions(values: FamilyOptionValues, context: TrainingPolicyContext): Record<string, unknown>;
    /**
     * The weighting of π-ID's loss the family trains best with: `'velocity'` (plain L2 on u, the reference;
     * the default), `'sigma'`, `'x0'` or `'sigma3'` (each state's error times σ, σ² or σ³) for policies whose
     * sensitivity to their parameters does not vanish as σ → 0.
     */
    readonly lossWeighting?: LossWeighting;
    /** The AdamW learning rate the family's students train well with (tools use it when none is given). */
    readonly learningRate?: number;
    /**
     * Residual blocks of a new MLP student (one a tool builds from random weights rather than copying a
     * teacher's network), where the family's students need another depth than the tool's default: a number,
     * or one per step count (`numInferenceSteps => blocks`). Read it with {@link familyMlpDepth}.
     */
    readonly mlpDepth?: number | ((numInferenceSteps: number) => number);
  };
  /** Sampling options (e.g. GM's temperature, 'auto' included), turned into `create` options per step. */
  readonly sampling?: {
    readonly options: FamilyOptionSpecs;
    policyOptions(values: FamilyOptionValues, context: SamplingPolicyContext): Record<string, unknown>;
  };
  /** The fused rollout kernel's name (and the kernels the family provides itself). */
  readonly fusedRollout?: FusedRolloutKernel;
}
