import {
  type AnalyticGMFlow,
  type AnalyticGMFlowOptions,
  createAnalyticGMFlow,
  type Sigma,
  type TeacherMetadata,
} from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
import { assertTeacherCall, asyncVelocity, type LocalTeacher } from './teacher-inputs';

export interface AnalyticGMTeacherOptions extends AnalyticGMFlowOptions {
  /** Time-warp shift the teacher is meant to be sampled with (metadata only, default 1). */
  shift?: number;
}

export interface AnalyticGMTeacher extends LocalTeacher {
  /** The exact flow behind it (posterior, float64 reference, sampling of the data). */
  readonly flow: AnalyticGMFlow;
}

/**
 * The exact rectified flow of Gaussian-mixture data x0 ~ Σ_k w_k·N(μ_k, std²·I) as a `Teacher`
 * (`means` is K × C, `weights` sum to 1). Takes x of shape [B, ...positions, C]; every position is an
 * independent draw, σ ∈ [0, 1]. It needs no condition.
 */
export function createAnalyticGMTeacher(options: AnalyticGMTeacherOptions): AnalyticGMTeacher {
  const flow = createAnalyticGMFlow(options);
  const metadata: TeacherMetadata = {
    layout: 'vector',
    shift: options.shift ?? 1,
    guidance: 'none',
    conditionNames: [],
    description: `analytic Gaussian mixture (K = ${flow.numComponents}, C = ${flow.dimension}, std = ${flow.std})`,
  };
  const velocitySync = (x: tf.Tensor, sigma: Sigma): tf.Tensor => {
    assertTeacherCall(x, sigma, undefined, { ...metadata, layout: undefined });
    return flow.velocity(x, sigma);
  };
  return { metadata, flow, velocitySync, velocity: asyncVelocity(velocitySync) };
}
