import {
  assertNumber,
  assertSigma,
  assertTensor,
  detachTensor,
  InvalidArgumentError,
  type Policy,
  type PolicyFamily,
  type Random,
  type RolloutSegment,
  type Sigma,
  sigmaColumn,
  sigmaValues,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { type GMParams, type GMX0Params, gmToX0Space, validateGMParams } from './gm-params';
import { builtinGMFusedRollout } from './kernels/gm-fused-kernel';

export interface GMPolicyOptions {
  /** Test-time temperature T < 1 sharpens: logw ← logsoftmax(logw / T), variance ← variance·T. */
  temperature?: number;
  /** Component dropout probability in [0, 1) (training): per sample and component, never all of a sample's. */
  dropout?: number;
  /** Random source for dropout. */
  random?: Random;
}

/** Hook a backend package installs to run the whole rollout of a GM policy in one kernel. */
export type GMFusedRollout = (
  policy: GMPolicyState,
  x: tf.Tensor,
  segment: RolloutSegment,
) => tf.Tensor | undefined;

/** What a fused kernel needs of a GM policy (x0-space tensors after temperature and dropout). */
export interface GMPolicyState {
  readonly xSrc: tf.Tensor;
  readonly sigmaSrc: Float32Array;
  readonly means: tf.Tensor;
  readonly logweights: tf.Tensor;
  readonly variance: tf.Tensor1D;
}

const fusedRollouts: GMFusedRollout[] = [];

/**
 * Lets a backend package provide a fused GM rollout (tried in registration order; a hook returns undefined
 * when it cannot run on the current backend). Returns a function that removes it.
 */
export function registerGMFusedRollout(hook: GMFusedRollout): () => void {
  fusedRollouts.push(hook);
  return () => {
    const i = fusedRollouts.indexOf(hook);
    if (i >= 0) fusedRollouts.splice(i, 1);
  };
}

const TINY = 1e-20;

/**
 * A GM policy. Its velocity at (x, σ) is u = (x − E[x0 | x_src, x])/σ where the x0-posterior is the
 * GMFlow posterior of the mixture. With ρ = σ/σ_s, α = 1 − σ, α_s = 1 − σ_s, v the shared variance:
 *
 *   ζ̃ = α² − ρ²α_s²,   ν̃ = α·x − ρ²α_s·x_src,   d̃ = v·ζ̃ + σ²        (the paper's ζ, ν, d times σ²)
 *   logw'_k = logw_k + (μ_k·ν̃ − ½·ζ̃·|μ_k|²)/d̃,        m̄ = Σ_k softmax(logw')_k·μ_k
 *   u = [σ·(x − m̄) − v·α·x − v·σ·α_s·(α_s·x − x_src)/σ_s²] / d̃
 *
 * This is algebraically the paper's formula, scaled so that no term blows up as σ → 0 (u is finite at
 * σ = 0), and the softmax is the max-subtracted log-sum-exp form.
 */
export class GMPolicy implements Policy, GMPolicyState {
  readonly family = 'gm';
  readonly batchSize: number;
  readonly numComponents: number;

  constructor(
    readonly xSrc: tf.Tensor,
    readonly sigmaSrc: Float32Array,
    readonly means: tf.Tensor,
    readonly logweights: tf.Tensor,
    readonly variance: tf.Tensor1D,
    private readonly meanNorms: tf.Tensor,
  ) {
    this.batchSize = xSrc.shape[0]!;
    this.numComponents = means.shape[means.rank - 2]!;
  }

  velocity(x: tf.Tensor, sigma: Sigma): tf.Tensor {
    assertTensor('x', x, { shape: this.xSrc.shape });
    assertSigma('sigma', sigma, this.batchSize);
    return tf.tidy(() => {
      const R = x.rank;
      const s = sigmaColumn(sigma, R);
      const ss = tf.tensor(this.sigmaSrc, [this.batchSize, ...new Array<number>(R - 1).fill(1)]);
      const a = tf.sub(1, s);
      const as = tf.sub(1, ss);
      const rho2 = tf.square(tf.div(s, ss));
      const v = tf.reshape(this.variance, ss.shape);
      const zeta = tf.sub(tf.square(a), tf.mul(rho2, tf.square(as)));
      const nu = tf.sub(tf.mul(a, x), tf.mul(tf.mul(rho2, as), this.xSrc));
      const d = tf.maximum(tf.add(tf.mul(v, zeta), tf.square(s)), TINY);
      const dot = tf.sum(tf.mul(this.means, tf.expandDims(nu, -2)), -1);
      const logits = tf.add(
        this.logweights,
        tf.div(tf.sub(dot, tf.mul(tf.mul(0.5, zeta), this.meanNorms)), d),
      );
      const probs = tf.softmax(logits);
      const mbar = tf.sum(tf.mul(tf.expandDims(probs, -1), this.means), -2);
      const srcTerm = tf.div(tf.mul(tf.mul(v, s), as), tf.square(ss));
      const numerator = tf.sub(
        tf.sub(tf.mul(s, tf.sub(x, mbar)), tf.mul(tf.mul(v, a), x)),
        tf.mul(srcTerm, tf.sub(tf.mul(as, x), this.xSrc)),
      );
      return tf.div(numerator, d);
    });
  }

  /**
   * The whole rollout in one kernel: registered hooks first (e.g. WebGPU), then the built-in cpu/wasm
   * kernel (not while a gradient tape records). Undefined: the caller goes op by op.
   */
  fusedRollout(x: tf.Tensor, segment: RolloutSegment): tf.Tensor | undefined {
    for (const hook of fusedRollouts) {
      const out = hook(this, x, segment);
      if (out) return out;
    }
    return builtinGMFusedRollout(this, x, segment);
  }

  /** The policy's parameters in x0-space (new tensors; caller owns them). */
  toX0Params(): GMX0Params {
    return {
      space: 'x0',
      means: this.means.clone(),
      logweights: this.logweights.clone(),
      variance: this.variance.clone(),
    };
  }

  detach(): GMPolicy {
    return new GMPolicy(
      detachTensor(this.xSrc),
      this.sigmaSrc,
      detachTensor(this.means),
      detachTensor(this.logweights),
      detachTensor(this.variance),
      detachTensor(this.meanNorms),
    );
  }

  dispose(): void {
    tf.dispose([this.xSrc, this.means, this.logweights, this.variance, this.meanNorms]);
  }
}

export interface GMFamilyDefaults extends GMPolicyOptions {}

export interface GMParamShapeOptions {
  shape: readonly number[];
  /** Number of mixture components K (default 8). */
  numComponents?: number;
}

export type GMFamily = Omit<PolicyFamily<GMParams, GMPolicyOptions>, 'create' | 'paramShapes'> & {
  paramShapes(options: GMParamShapeOptions): { means: number[]; logweights: number[]; logstd: number[] };
  create(params: GMParams, xSrc: tf.Tensor, sigmaSrc: Sigma, options?: GMPolicyOptions): GMPolicy;
};

/** Builds the GM policy family (defaults apply to every policy it creates unless overridden per call). */
export function createGMFamily(defaults: GMFamilyDefaults = {}): GMFamily {
  return {
    specificationVersion: 'v1',
    name: 'gm',
    paramShapes({ shape, numComponents = 8 }) {
      assertNumber('numComponents', numComponents, { min: 1, integer: true });
      if (!Array.isArray(shape) || shape.length < 2) {
        throw new InvalidArgumentError('shape', 'the shape of x, [B, ...positions, C]', String(shape));
      }
      const positions = shape.slice(0, -1);
      return {
        means: [...positions, numComponents, shape[shape.length - 1]!],
        logweights: [...positions, numComponents],
        logstd: [shape[0]!],
      };
    },
    create(params, xSrc, sigmaSrc, options = {}) {
      const { temperature = defaults.temperature ?? 1, dropout = defaults.dropout ?? 0 } = options;
      const random = options.random ?? defaults.random;
      assertTensor('xSrc', xSrc, { minRank: 2 });
      const B = xSrc.shape[0]!;
      assertSigma('sigmaSrc', sigmaSrc, B, { allowZero: false });
      validateGMParams(params, xSrc);
      assertNumber('temperature', temperature, { min: 0, minExclusive: true });
      assertNumber('dropout', dropout, { min: 0, max: 1, maxExclusive: true });
      if (dropout > 0 && !random) {
        throw new InvalidArgumentError('random', 'a Random generator when dropout > 0', 'undefined');
      }
      const sigmaSrcValues = sigmaValues(sigmaSrc, B);
      const K = params.means.shape[params.means.rank - 2]!;
      const dropMask = dropout > 0 ? componentDropMask(B, K, dropout, random!) : null;
      const state = tf.tidy(() => {
        const x0 = gmToX0Space(params, xSrc, tf.tensor1d(sigmaSrcValues));
        let logweights = tf.logSoftmax(x0.logweights);
        let variance = x0.variance;
        if (temperature < 1) {
          logweights = tf.logSoftmax(tf.div(logweights, temperature));
          variance = tf.mul(variance, temperature);
        }
        if (dropMask) {
          const mask = tf.tensor(dropMask, [B, ...new Array<number>(xSrc.rank - 2).fill(1), K], 'bool');
          logweights = tf.where(
            tf.broadcastTo(mask, logweights.shape),
            tf.fill(logweights.shape, -Infinity),
            logweights,
          );
        }
        const meanNorms = tf.sum(tf.square(x0.means), -1);
        return { means: x0.means, logweights, variance, meanNorms };
      });
      return new GMPolicy(
        xSrc.clone(),
        sigmaSrcValues,
        state.means,
        state.logweights,
        state.variance,
        state.meanNorms,
      );
    },
  };
}

/** Per sample and component, drop with probability p; a sample whose every component drew "drop" keeps all. */
export function componentDropMask(
  batch: number,
  numComponents: number,
  p: number,
  random: Random,
): Uint8Array {
  const mask = new Uint8Array(batch * numComponents);
  for (let b = 0; b < batch; b++) {
    let all = true;
    for (let k = 0; k < numComponents; k++) {
      const drop = random.uniform() < p;
      mask[b * numComponents + k] = drop ? 1 : 0;
      all &&= drop;
    }
    if (all) mask.fill(0, b * numComponents, (b + 1) * numComponents);
  }
  return mask;
}

/** The GM family with default options. */
export const gm: GMFamily = createGMFamily();
