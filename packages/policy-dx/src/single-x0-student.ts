import {
  type Condition,
  describeValue,
  InvalidArgumentError,
  type Student,
  x0FromVelocity,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { DXX0Params } from './dx-policy';

/**
 * What the single-x0 student needs of its teacher: the velocity, computed synchronously in this process (the
 * analytic, tfjs-model and latent-transformer teachers of @piflow/teachers have it).
 */
export interface SyncVelocityTeacher {
  velocitySync(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): tf.Tensor;
}

/** DX parameters in x0-space with one grid point (the shape `dx.create` takes). */
export interface SingleX0Params extends DXX0Params {
  /** [B, 1, ...positions, C] */
  x0Grid: tf.Tensor;
}

/**
 * The single-x0 student: at (x, σ_src) it asks an in-process teacher once and outputs its x0 prediction
 * x − σ_src·u as a DX policy with N = 1, whose rollout follows u = (x − x0)/σ down to the next step. This
 * is what a π-Flow DX student is initialised to imitate, and a baseline any distilled student must beat;
 * with `sample` from @piflow/core and the `dx` family it runs a real few-step π-Flow sampling loop through
 * the teacher.
 */
export function createSingleX0Student(teacher: SyncVelocityTeacher): Student<SingleX0Params> {
  if (!teacher || typeof teacher.velocitySync !== 'function') {
    throw new InvalidArgumentError(
      'teacher',
      'an in-process teacher with velocitySync(x, sigma, condition?) (analytic, tfjs-model or latent-transformer teacher)',
      describeValue(teacher),
    );
  }
  return {
    family: 'dx',
    predict(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): SingleX0Params {
      const u = teacher.velocitySync(x, sigma, condition);
      const x0Grid = tf.tidy(() => tf.expandDims(x0FromVelocity(x, u, sigma), 1));
      u.dispose();
      return { space: 'x0', x0Grid };
    },
  };
}
