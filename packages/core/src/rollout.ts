import * as tf from '@tensorflow/tfjs-core';
import { assertSigma, type Sigma, sigmaValues } from './conventions';
import { InvalidArgumentError } from './errors';
import { runFusedRollout } from './fused-rollout';
import { unwarp, warp } from './time-warp';
import type { Policy, RolloutSegment } from './types';
import { assertNumber, assertTensor, describeValue } from './validation';

/** Anything with a synchronous velocity field: a policy, or the analytic flow. */
export interface VelocityField {
  velocity(x: tf.Tensor, sigma: Sigma): tf.Tensor;
  fusedRolloutCall?: Policy['fusedRolloutCall'];
}

export interface RolloutOptions {
  /** Where the rollout starts: a number or a [B] tensor (the policy's σ_src). */
  sigmaSrc: Sigma;
  /** Where it ends (≤ sigmaSrc): a number or a [B] tensor. */
  sigmaDst: Sigma;
  /** Euler substeps per unit of raw time (default 128, as the reference). */
  substeps?: number;
  /** Time-warp shift of the substep grid (default 1). */
  shift?: number;
  /** Use the policy's fused kernel when the current backend has one (default true). */
  fused?: boolean;
}

/** Round half to even, as torch.round does. */
export function roundHalfEven(value: number): number {
  const r = Math.round(value);
  return Math.abs(value % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Number of Euler substeps for a raw-time span: max(round(span·substeps), 1). */
export function substepCount(rawSpan: number, substeps: number): number {
  return Math.max(roundHalfEven(rawSpan * substeps), 1);
}

/** One item's substeps in raw time: n substeps of −rawStep each from rawSrc (clamped at 0). */
export interface RolloutRawSteps {
  rawSrc: number;
  rawStep: number;
  count: number;
}

/**
 * Per item, the raw-time walk of a rollout segment: item b takes n_b = max(round((r_src − r_dst)·substeps), 1)
 * substeps of equal raw size h_b, visiting r_j = max(r_src − j·h_b, 0) and σ_j = warp(r_j) (σ_0 is σ_src
 * itself). rolloutSigmaGrid lists those σ; a kernel may also walk them in closed form from this.
 */
export function rolloutRawSteps(segment: RolloutSegment): RolloutRawSteps[] {
  const { sigmaSrc, sigmaDst, substeps, shift } = segment;
  return Array.from(sigmaSrc, (src, b) => {
    const rawSrc = unwarp(Math.min(Math.max(src, 0), 1), shift);
    const rawDst = unwarp(Math.min(Math.max(sigmaDst[b]!, 0), 1), shift);
    const span = rawSrc - rawDst;
    const count = substepCount(span, substeps);
    return { rawSrc, rawStep: span / count, count };
  });
}

/**
 * The noise levels each batch item visits (rolloutRawSteps): per-item σ sequences of length n_b + 1, the
 * first σ_src itself. Shared by the op-by-op rollout and every fused kernel so they walk the same grid.
 */
export function rolloutSigmaGrid(segment: RolloutSegment): Float64Array[] {
  return rolloutRawSteps(segment).map(({ rawSrc, rawStep, count }, b) => {
    const grid = new Float64Array(count + 1);
    grid[0] = segment.sigmaSrc[b]!;
    let r = rawSrc;
    for (let j = 1; j <= count; j++) {
      r = Math.max(r - rawStep, 0);
      grid[j] = warp(r, segment.shift);
    }
    return grid;
  });
}

/**
 * Integrates a policy from σ_src to σ_dst with Euler substeps uniform in raw time, and returns x at σ_dst:
 *   x ← x + π(x, σ)·(σ' − σ),  σ' = warp(r − h),  h = (r_src − r_dst)/n
 * per batch item (items with fewer substeps stop early). Uses the policy's fused kernel on the current
 * backend when it has one and `fused` is not false; otherwise op by op (differentiable).
 */
export function rollout(policy: VelocityField, x: tf.Tensor, options: RolloutOptions): tf.Tensor {
  if (!policy || typeof (policy as VelocityField).velocity !== 'function') {
    throw new InvalidArgumentError(
      'policy',
      'a Policy (an object with velocity(x, sigma))',
      describeValue(policy),
    );
  }
  assertTensor('x', x, { minRank: 2 });
  if (!options || typeof options !== 'object') {
    throw new InvalidArgumentError(
      'options',
      '{ sigmaSrc, sigmaDst, substeps?, shift? }',
      describeValue(options),
    );
  }
  const { substeps = 128, shift = 1, fused = true } = options;
  const batch = x.shape[0]!;
  assertNumber('substeps', substeps, { min: 1, integer: true });
  assertNumber('shift', shift, { min: 0, minExclusive: true });
  assertSigma('sigmaSrc', options.sigmaSrc, batch, { allowZero: false });
  assertSigma('sigmaDst', options.sigmaDst, batch);
  const segment: RolloutSegment = {
    sigmaSrc: sigmaValues(options.sigmaSrc, batch),
    sigmaDst: sigmaValues(options.sigmaDst, batch),
    substeps,
    shift,
  };
  for (let b = 0; b < batch; b++) {
    if (segment.sigmaDst[b]! > segment.sigmaSrc[b]!) {
      throw new InvalidArgumentError(
        `sigmaDst${typeof options.sigmaDst === 'number' ? '' : `[${b}]`}`,
        `a value ≤ sigmaSrc (${segment.sigmaSrc[b]})`,
        String(segment.sigmaDst[b]),
      );
    }
  }
  if (fused && policy.fusedRolloutCall && !tf.engine().isTapeOn()) {
    const call = policy.fusedRolloutCall(x, segment);
    const out = call && runFusedRollout(call);
    if (out) return out;
  }
  return rolloutOpByOp(policy, x, segment);
}

/** The op-by-op reference rollout (differentiable; the path fused kernels are tested against). */
export function rolloutOpByOp(policy: VelocityField, x: tf.Tensor, segment: RolloutSegment): tf.Tensor {
  const grids = rolloutSigmaGrid(segment);
  const batch = grids.length;
  const maxSteps = Math.max(...grids.map((g) => g.length - 1));
  const uniform = grids.every((g) => g.length === grids[0]!.length && g.every((v, j) => v === grids[0]![j]));
  const columnShape = [batch, ...new Array<number>(x.rank - 1).fill(1)];
  let current = x.clone();
  try {
    for (let j = 0; j < maxSteps; j++) {
      const next = tf.tidy(() => {
        if (uniform) {
          const g = grids[0]!;
          const u = policy.velocity(current, g[j]!);
          return tf.add(current, tf.mul(u, g[j + 1]! - g[j]!));
        }
        const sigma = new Float32Array(batch);
        const delta = new Float32Array(batch);
        const active: boolean[] = [];
        for (let b = 0; b < batch; b++) {
          const g = grids[b]!;
          const on = j < g.length - 1;
          active.push(on);
          sigma[b] = on ? g[j]! : g[g.length - 1]!;
          delta[b] = on ? g[j + 1]! - g[j]! : 0;
        }
        const u = policy.velocity(current, tf.tensor1d(sigma));
        const stepped = tf.add(current, tf.mul(u, tf.tensor(delta, columnShape)));
        if (active.every(Boolean)) return stepped;
        const mask = tf.tensor(Uint8Array.from(active, Number), columnShape, 'bool');
        return tf.where(tf.broadcastTo(mask, x.shape), stepped, current);
      });
      current.dispose();
      current = next;
    }
  } catch (error) {
    current.dispose(); // a policy that rejects x (or σ) leaves nothing behind
    throw error;
  }
  return current;
}
