import {
  assertNumber,
  assertSigma,
  assertTensor,
  describeValue,
  detachTensor,
  type FusedRolloutCall,
  InvalidArgumentError,
  type ParamShapeOptions,
  type Policy,
  type PolicyFamily,
  type RolloutSegment,
  type Sigma,
  sigmaColumn,
  sigmaValues,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { gaussianFusedRolloutCall, gaussianFusedRolloutKernel } from './gaussian-rollout-kernel';

/** x0-space parameters: one Gaussian N(mean, variance) over x0 per element of x. */
export interface GaussianX0Params {
  space: 'x0';
  /** `[B, …positions, C]`: `E[x0 | x_src]`. */
  mean: tf.Tensor;
  /** `[B, …positions, C]`: `Var[x0 | x_src]`, > 0. */
  variance: tf.Tensor;
}

/**
 * u-space parameters, as a student outputs them: the velocity mean and log-std. Converted with
 * x0 mean = x_src − σ_src·mean, x0 variance = (σ_src·e^logstd)².
 */
export interface GaussianUParams {
  space: 'u';
  /** [B, …positions, C]. */
  mean: tf.Tensor;
  /** [B, …positions, C]. */
  logstd: tf.Tensor;
}

export type GaussianParams = GaussianX0Params | GaussianUParams;

export interface GaussianPolicyOptions {
  /** Test-time temperature: the x0 variance is multiplied by it (default 1; < 1 sharpens). */
  temperature?: number;
}

/**
 * The diagonal-Gaussian policy. Given x_src at σ_s, each element of x0 is modelled as an independent
 * N(μ, v). At a later (x, σ) the x0-posterior is again Gaussian (the GMFlow posterior with one component and
 * per-element variance):
 *   ζ = ((1−σ)/σ)² − ((1−σ_s)/σ_s)²,  ν = (1−σ)/σ²·x − (1−σ_s)/σ_s²·x_src,
 *   μ' = (v·ν + μ)/(v·ζ + 1),  u = (x − μ')/σ.
 * Multiplying through by σ² gives the form used here, which never divides by σ (finite at σ = 0):
 *   u = [σ(x − μ) − v(1−σ)x + σ·v·(β·x_src − α²·x)] / [v(1−σ)² + σ²(1 − v·α²)],
 *   α = (1−σ_s)/σ_s,  β = (1−σ_s)/σ_s²;  the denominator equals σ²(v·ζ + 1) > 0 for σ ≤ σ_s.
 * One Gaussian per element is what the GM policy with K = 1 would be if its variance were per element: it
 * cannot represent multi-modal x0, but it costs a handful of elementwise ops, and for Gaussian data it is
 * exact.
 */
export class GaussianPolicy implements Policy {
  readonly family = 'gaussian';
  readonly batchSize: number;

  constructor(
    /** [B, …positions, C] */
    readonly xSrc: tf.Tensor,
    /** [B] */
    readonly sigmaSrc: Float32Array,
    /** x0 mean, [B, …positions, C] */
    readonly mean: tf.Tensor,
    /** x0 variance, [B, …positions, C] */
    readonly variance: tf.Tensor,
  ) {
    this.batchSize = xSrc.shape[0]!;
  }

  velocity(x: tf.Tensor, sigma: Sigma): tf.Tensor {
    assertTensor('x', x, { shape: this.xSrc.shape });
    assertSigma('sigma', sigma, this.batchSize);
    const column = [this.batchSize, ...new Array<number>(x.rank - 1).fill(1)];
    const alphaSquared = new Float32Array(this.batchSize);
    const beta = new Float32Array(this.batchSize);
    this.sigmaSrc.forEach((s, b) => {
      alphaSquared[b] = ((1 - s) / s) ** 2;
      beta[b] = (1 - s) / (s * s);
    });
    return tf.tidy(() => {
      const s = sigmaColumn(sigma, x.rank);
      const a2 = tf.tensor(alphaSquared, column);
      const bt = tf.tensor(beta, column);
      const v = this.variance;
      const oneMinusS = tf.sub(1, s);
      const numerator = tf.add(
        tf.sub(tf.mul(s, tf.sub(x, this.mean)), tf.mul(tf.mul(v, oneMinusS), x)),
        tf.mul(tf.mul(s, v), tf.sub(tf.mul(bt, this.xSrc), tf.mul(a2, x))),
      );
      const denominator = tf.add(
        tf.mul(v, tf.square(oneMinusS)),
        tf.mul(tf.square(s), tf.sub(1, tf.mul(v, a2))),
      );
      return tf.div(numerator, tf.maximum(denominator, 1e-30));
    });
  }

  /** The whole segment as one call of the family's fused kernel (plain JS on cpu and wasm). */
  fusedRolloutCall(x: tf.Tensor, segment: RolloutSegment): FusedRolloutCall | undefined {
    return gaussianFusedRolloutCall(this, x, segment);
  }

  detach(): GaussianPolicy {
    return new GaussianPolicy(
      detachTensor(this.xSrc),
      this.sigmaSrc,
      detachTensor(this.mean),
      detachTensor(this.variance),
    );
  }

  dispose(): void {
    tf.dispose([this.xSrc, this.mean, this.variance]);
  }
}

export type GaussianFamily = Omit<
  PolicyFamily<GaussianParams, GaussianPolicyOptions>,
  'create' | 'paramShapes'
> & {
  /** What a student outputs for x of `shape`: u-space `mean` and `logstd`, both of x's shape. */
  paramShapes(options: ParamShapeOptions): { mean: number[]; logstd: number[] };
  create(
    params: GaussianParams,
    xSrc: tf.Tensor,
    sigmaSrc: Sigma,
    options?: GaussianPolicyOptions,
  ): GaussianPolicy;
};

/**
 * What a student outputs for this family (`@piflow/models` builds the head from it): per position, the
 * velocity mean [C] (from a teacher: the teacher's own output layer, so the first policy starts at the
 * teacher's velocity) and log-std [C] (zero kernel, bias `initialLogstd`).
 */
const gaussianStudentHead: NonNullable<PolicyFamily['studentHead']> = {
  options: {
    initialLogstd: {
      type: 'number',
      default: Math.log(0.3),
      description: 'initial log-std of u per element',
    },
  },
  build: ({ channels, options }) => ({
    space: 'u',
    outputs: {
      mean: { per: 'position', shape: [channels], fromTeacher: 'replicate' },
      logstd: {
        per: 'position',
        shape: [channels],
        init: { kernel: 'zeros', bias: { constant: options.initialLogstd as number } },
      },
    },
  }),
};

/** Sampling options: a temperature on every step but the last (1 = off). */
const gaussianSampling: NonNullable<PolicyFamily['sampling']> = {
  options: {
    temperature: {
      type: 'number',
      min: 0,
      minExclusive: true,
      default: 1,
      description: 'x0 variance multiplier on every step but the last (1 = off)',
    },
  },
  policyOptions: ({ temperature }, { isLast }) => (isLast || temperature === 1 ? {} : { temperature }),
};

/** Builds the diagonal-Gaussian policy family; `defaults.temperature` applies unless overridden per call. */
export function createGaussianFamily(defaults: GaussianPolicyOptions = {}): GaussianFamily {
  if (defaults.temperature !== undefined) {
    assertNumber('defaults.temperature', defaults.temperature, { min: 0, minExclusive: true });
  }
  return {
    specificationVersion: 'v2',
    name: 'gaussian',
    packageName: 'piflow-policy-gaussian',
    description: 'one Gaussian over x0 per element (closed-form posterior)',
    studentHead: gaussianStudentHead,
    sampling: gaussianSampling,
    fusedRollout: gaussianFusedRolloutKernel,
    paramShapes(options) {
      const shape = (options as ParamShapeOptions | undefined)?.shape;
      if (!Array.isArray(shape) || shape.length < 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
        throw new InvalidArgumentError('shape', 'the shape of x, [B, ...positions, C]', describeValue(shape));
      }
      return { mean: [...shape], logstd: [...shape] };
    },
    create(params, xSrc, sigmaSrc, options = {}) {
      const { temperature = defaults.temperature ?? 1 } = options;
      assertTensor('xSrc', xSrc, { minRank: 2 });
      const B = xSrc.shape[0]!;
      assertSigma('sigmaSrc', sigmaSrc, B, { allowZero: false });
      assertNumber('temperature', temperature, { min: 0, minExclusive: true });
      const p = params as
        | { space?: unknown; mean?: unknown; variance?: unknown; logstd?: unknown }
        | undefined;
      if (!p || (p.space !== 'x0' && p.space !== 'u')) {
        throw new InvalidArgumentError(
          'params',
          "Gaussian parameters { space: 'x0', mean, variance } or { space: 'u', mean, logstd }",
          describeValue(p?.space ?? p),
        );
      }
      assertTensor('params.mean', p.mean, { shape: xSrc.shape });
      const spread = p.space === 'x0' ? 'variance' : 'logstd';
      assertTensor(`params.${spread}`, p[spread], { shape: xSrc.shape });
      const sigmaSrcValues = sigmaValues(sigmaSrc, B);
      const [mean, variance] = tf.tidy(() => {
        const s = tf.tensor(sigmaSrcValues, [B, ...new Array<number>(xSrc.rank - 1).fill(1)]);
        if (p.space === 'x0') {
          return [tf.clone(p.mean as tf.Tensor), tf.mul(p.variance as tf.Tensor, temperature)];
        }
        const x0Mean = tf.sub(xSrc, tf.mul(s, p.mean as tf.Tensor));
        // (σ_s·e^logstd)² = σ_s²·e^(2·logstd)
        const x0Variance = tf.mul(
          tf.mul(tf.square(s), tf.exp(tf.mul(p.logstd as tf.Tensor, 2))),
          temperature,
        );
        return [x0Mean, x0Variance];
      });
      return new GaussianPolicy(xSrc.clone(), sigmaSrcValues, mean!, variance!);
    },
  };
}

/** The diagonal-Gaussian family with default options. */
export const gaussian: GaussianFamily = createGaussianFamily();
