import type * as tf from '@tensorflow/tfjs-core';
import type { Sigma } from './conventions';
import type { FusedRolloutCall } from './policy-family';

/** Conditioning inputs of a teacher or student, by name (e.g. `{ labels }` or `{ textEmbeddings, pooled }`). */
export type Condition = Readonly<Record<string, tf.Tensor>>;

/** What a fused rollout is asked to do: all Euler substeps of one step, from σ_src down to σ_dst. */
export interface RolloutSegment {
  /** [B] noise levels where the segment starts (the policy's σ_src). */
  sigmaSrc: Float32Array;
  /** [B] noise levels where the segment ends. */
  sigmaDst: Float32Array;
  /** Euler substeps per unit of raw time. */
  substeps: number;
  /** Time-warp shift of the substep grid. */
  shift: number;
}

/**
 * A policy π(x, σ): a network-free velocity field valid for σ_dst ≤ σ ≤ σ_src, built from a student's
 * output at (x_src, σ_src). Pure function of its parameters; owns its parameter tensors.
 */
export interface Policy {
  /** Name of the family that made it. */
  readonly family: string;
  /** Batch size B. */
  readonly batchSize: number;
  /** Velocity at (x, σ); x has the shape of x_src, σ is a number or a [B] tensor. Synchronous. */
  velocity(x: tf.Tensor, sigma: Sigma): tf.Tensor;
  /** A copy whose parameters carry no gradient (shares memory; dispose it separately). */
  detach(): Policy;
  /** Frees the parameter tensors. */
  dispose(): void;
  /**
   * Optional: the family's fused rollout kernel call for this segment (kernel name, inputs, attributes), or
   * `undefined` when x does not suit it. `rollout` runs it through `runFusedRollout` when the active backend
   * has a kernel registered under that name and no gradient tape records; otherwise it goes op by op.
   */
  fusedRolloutCall?(x: tf.Tensor, segment: RolloutSegment): FusedRolloutCall | undefined;
}

export interface TeacherMetadata {
  /** Per-sample shape of x (without the batch axis), when fixed. */
  sampleShape?: readonly number[];
  /** 'vector' [B, C], 'image' [B, H, W, C] or 'tokens' [B, L, C]. */
  layout?: 'vector' | 'image' | 'tokens';
  /** The time-warp shift the teacher is meant to be sampled with. */
  shift?: number;
  /** How the teacher applies guidance: none, classifier-free (two passes), or embedded (an input). */
  guidance?: 'none' | 'cfg' | 'embedded';
  /** Names of the conditioning inputs it takes. */
  conditionNames?: readonly string[];
  /** Free-form description. */
  description?: string;
}

/** A flow model that predicts the velocity u(x, σ, condition). Asynchronous: remote teachers exist. */
export interface Teacher {
  readonly metadata: TeacherMetadata;
  velocity(x: tf.Tensor, sigma: Sigma, condition?: Condition): Promise<tf.Tensor>;
  /**
   * The same velocity computed synchronously, offered by teachers that run in this process (tfjs models,
   * analytic flows). The π-ID trainer then queries the teacher inside its gradient pass and evaluates the
   * student once per iteration instead of twice. A call it cannot answer synchronously throws
   * `SyncUnavailableError` (the caller then uses `velocity`).
   */
  velocitySync?(x: tf.Tensor, sigma: Sigma, condition?: Condition): tf.Tensor;
  dispose?(): void;
}

/** A student network: (x, σ, condition) → policy parameters for one family. Synchronous (it is trained). */
export interface Student<TParams = unknown> {
  /** Name of the policy family whose parameters it outputs. */
  readonly family: string;
  predict(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): TParams;
}

/**
 * A student the π-ID trainer can train: its `predict` is built from `variables`, which the optimiser updates,
 * the EMA tracks and checkpoints save (in this order, so the order must be stable for a given architecture).
 */
export interface TrainableStudent<TParams = unknown> extends Student<TParams> {
  readonly variables: readonly tf.Variable[];
  /** Options the student's family needs at `create` (e.g. DX shift and segment size). */
  readonly policyOptions?: Readonly<Record<string, unknown>>;
  dispose?(): void;
}

/** Disposes every tensor found in a params object (one level deep). */
export function disposeParams(params: unknown): void {
  if (typeof params !== 'object' || params === null) return;
  for (const value of Object.values(params)) {
    if (value && typeof value === 'object' && 'dispose' in value && 'dataId' in value) {
      (value as tf.Tensor).dispose();
    }
  }
}
