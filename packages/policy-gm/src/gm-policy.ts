import {
  assertNumber,
  assertSigma,
  assertTensor,
  canFuseRollout,
  detachTensor,
  type FusedRolloutCall,
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
import { gmFusedRolloutAttrs, gmFusedRolloutKernel } from './kernels/gm-fused-kernel';

export interface GMPolicyOptions {
  /** Test-time temperature T < 1 sharpens: logw ← logw / T (normalised on use), variance ← variance·T. */
  temperature?: number;
  /** Component dropout probability in [0, 1) (training): per sample and component, never all of a sample's. */
  dropout?: number;
  /** Random source for dropout. */
  random?: Random;
}

/** What a fused kernel needs of a GM policy (x0-space tensors after temperature and dropout). */
export interface GMPolicyState {
  readonly xSrc: tf.Tensor;
  readonly sigmaSrc: Float32Array;
  readonly means: tf.Tensor;
  readonly logweights: tf.Tensor;
  readonly variance: tf.Tensor1D;
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
   * The whole rollout as one call of the family's fused kernel (`gmFusedRolloutKernel`, one tfjs kernel
   * name with a kernel per backend), run by core's `rollout` through `runFusedRollout`; undefined when x is
   * not a float32 tensor of x_src's shape (the rollout then goes op by op and reports a mismatch).
   */
  fusedRolloutCall(x: tf.Tensor, segment: RolloutSegment): FusedRolloutCall | undefined {
    if (!canFuseRollout(x, this.xSrc)) return undefined;
    return {
      kernel: gmFusedRolloutKernel,
      inputs: {
        x,
        xSrc: this.xSrc,
        means: this.means,
        logweights: this.logweights,
        variance: this.variance,
      },
      attrs: gmFusedRolloutAttrs(this.sigmaSrc, segment) as unknown as tf.NamedAttrMap,
    };
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

/** The GM student head: u-space means [.., K, C], log-weights [.., K] (logits), one log-std per sample. */
const gmStudentHead: NonNullable<PolicyFamily['studentHead']> = {
  options: {
    numComponents: { type: 'integer', min: 1, default: 8, description: 'mixture components K per position' },
    logstdHiddenDim: {
      type: 'integer',
      min: 1,
      default: 128,
      description: 'hidden width of the log-std MLP',
    },
    initialLogstd: {
      type: 'number',
      default: Math.log(0.05),
      description: 'initial log standard deviation of u (bias of the log-std MLP)',
    },
  },
  label: (options) => `GM K=${options.numComponents}`,
  build({ channels, options }) {
    const K = options.numComponents as number;
    return {
      space: 'u',
      outputs: {
        // without a teacher the means bias starts at N(0, 0.1²) so the components differ (as the reference)
        means: {
          per: 'position',
          shape: [K, channels],
          init: { bias: { normal: 0.1 } },
          fromTeacher: 'replicate-with-noise',
        },
        // log-weights as logits: every use takes a softmax (normalising them here would be a wasted pass)
        logweights: { per: 'position', shape: [K], init: { kernel: 'zeros' } },
        logstd: {
          per: 'sample',
          shape: [],
          hiddenDim: options.logstdHiddenDim as number,
          init: { kernel: 'zeros', bias: { constant: options.initialLogstd as number } },
        },
      },
    };
  },
};

/** Auto temperature for N steps, as the official pipeline: min(0.1·(N − 1), 1) (0.3 at 4 steps, 0.7 at 8). */
export function autoTemperature(numInferenceSteps: number): number {
  return Math.min(Math.max(0.1 * (numInferenceSteps - 1), 0), 1);
}

const gmTraining: NonNullable<PolicyFamily['training']> = {
  options: {
    dropout: {
      type: 'number',
      min: 0,
      max: 1,
      maxExclusive: true,
      default: 0.05,
      description: 'component dropout of the rollout policy during π-ID (per sample and component)',
    },
  },
  policyOptions: ({ dropout }, { random }) => ((dropout as number) > 0 ? { dropout, random } : {}),
  // Residual blocks of a new MLP student, measured per step count on 6-D mixtures whose modes separate late
  // (docs/BENCHMARKS.md): 4-step students were too wide with 3 blocks (−0.22 and −0.27 nats), not with 4
  // (−0.04, −0.07); 2-step ones sampled at 4 steps the other way round (3 blocks −0.07 / −0.06, 4 blocks
  // −0.15 / −0.12). 1-step students met their goals with both.
  mlpDepth: (numInferenceSteps) => (numInferenceSteps === 2 ? 3 : 4),
};

const gmSampling: NonNullable<PolicyFamily['sampling']> = {
  options: {
    temperature: {
      type: 'number-or-auto',
      min: 0,
      minExclusive: true,
      default: 1,
      description: "temperature of every step but the last (1 = off; 'auto' = min(0.1·(N − 1), 1))",
    },
  },
  policyOptions({ temperature }, { numInferenceSteps, isLast }) {
    const T = temperature === 'auto' ? autoTemperature(numInferenceSteps) : (temperature as number);
    return isLast || T >= 1 || T <= 0 ? {} : { temperature: T };
  },
};

export type GMFamily = Omit<PolicyFamily<GMParams, GMPolicyOptions>, 'create' | 'paramShapes'> & {
  paramShapes(options: GMParamShapeOptions): { means: number[]; logweights: number[]; logstd: number[] };
  create(params: GMParams, xSrc: tf.Tensor, sigmaSrc: Sigma, options?: GMPolicyOptions): GMPolicy;
};

/** Builds the GM policy family (defaults apply to every policy it creates unless overridden per call). */
export function createGMFamily(defaults: GMFamilyDefaults = {}): GMFamily {
  return {
    specificationVersion: 'v2',
    name: 'gm',
    packageName: '@piflow/policy-gm',
    description: 'Gaussian mixture over x0 per position (K components, one shared variance per sample)',
    studentHead: gmStudentHead,
    training: gmTraining,
    sampling: gmSampling,
    fusedRollout: gmFusedRolloutKernel,
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
        // Log-weights enter only through softmaxes (the velocity, the fused kernels, mixture draws): they are
        // kept as given (the student head returns logits) and normalised on use.
        let logweights = x0.logweights;
        let variance = x0.variance;
        if (temperature < 1) {
          logweights = tf.div(logweights, temperature);
          variance = tf.mul(variance, temperature);
        }
        if (dropMask) {
          // −∞ added to the dropped components' log-weights (a broadcast add: no [B, …, K] mask is built)
          const drop = Float32Array.from(dropMask, (d) => (d ? -Infinity : 0));
          logweights = tf.add(
            logweights,
            tf.tensor(drop, [B, ...new Array<number>(xSrc.rank - 2).fill(1), K]),
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
