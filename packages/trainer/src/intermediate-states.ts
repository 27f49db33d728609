import { type Policy, rollout, rolloutOpByOp, roundHalfEven, warp } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/** One intermediate state of π-ID: where the detached policy took each sample, and the teacher's velocity there. */
export interface State {
  x: tf.Tensor;
  sigma: Float32Array;
  rawA: Float64Array;
  rawEnd: Float64Array;
  target: tf.Tensor;
}

/**
 * The value of `fn` as a constant of any gradient tape: its ops run inside a custom-gradient op, so the tape
 * records neither them nor their saved activations, fused kernels (which run only off a tape) may run, and
 * the gradient to `anchor` is zero. For what a π-ID loss regresses onto: the teacher's velocity and the
 * detached policy's rollouts.
 */
export function untaped(fn: () => tf.Tensor, anchor: tf.Tensor): tf.Tensor {
  return tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: fn(),
    gradFunc: () => tf.zerosLike(inputs[0] as tf.Tensor),
  }))(anchor);
}

/** Rolls a detached policy per sample from σ to σ' ≤ σ (off any gradient tape: fused kernels allowed). */
export function rolloutBetween(
  policy: Policy,
  x: tf.Tensor,
  from: Float32Array,
  to: Float32Array,
  substeps: number,
  shift: number,
) {
  const start = from.map((s) => Math.max(s, 1e-7));
  const sigmaSrc = tf.tensor1d(start);
  const sigmaDst = tf.tensor1d(to.map((s, b) => Math.min(s, start[b]!)));
  try {
    return untaped(() => rollout(policy, x, { sigmaSrc, sigmaDst, substeps, shift }), x);
  } finally {
    tf.dispose([sigmaSrc, sigmaDst]);
  }
}

/**
 * The prediction at state (x_a, σ_a): the student's mean velocity over raw [r_a, r_end] (the secant of its
 * own differentiable rollout), or its local velocity where that window is shorter than 2 substeps.
 */
export function averageVelocity(policy: Policy, state: State, substeps: number, shift: number): tf.Tensor {
  const B = state.sigma.length;
  const small = Array.from(state.rawA, (r, b) => roundHalfEven((r - state.rawEnd[b]!) * substeps) < 2);
  const local = policy.velocity(state.x, tf.tensor1d(state.sigma));
  if (small.every(Boolean)) return local;
  const sigmaEnd = Float32Array.from(state.rawEnd, (r, b) =>
    Math.min(warp(Math.min(Math.max(r, 0), 1), shift), state.sigma[b]!),
  );
  const end = rolloutOpByOp(policy, state.x, { sigmaSrc: state.sigma, sigmaDst: sigmaEnd, substeps, shift });
  const column = [B, ...new Array<number>(state.x.rank - 1).fill(1)];
  const span = tf.tensor(
    state.sigma.map((s, b) => Math.max(s - sigmaEnd[b]!, 1e-4)),
    column,
  );
  const secant = tf.div(tf.sub(state.x, end), span);
  if (small.every((s) => !s)) return secant;
  const mask = tf.broadcastTo(tf.tensor(Uint8Array.from(small, Number), column, 'bool'), state.x.shape);
  return tf.where(mask, local, secant);
}

export function disposeStates(states: State[]): void {
  for (const s of states) tf.dispose([s.x, s.target]);
  states.length = 0;
}
