import {
  assertNumber,
  assertOneOf,
  assertSigma,
  assertTensor,
  assertTensorValues,
  canFuseRollout,
  describeValue,
  detachTensor,
  type FusedRolloutCall,
  InvalidArgumentError,
  type Policy,
  type PolicyFamily,
  type RolloutSegment,
  type Sigma,
  sigmaColumn,
  sigmaValues,
  unwarp,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { dxFusedRolloutAttrs, dxFusedRolloutKernel } from './kernels/dx-fused-kernel';

/** DX parameters in x0-space: N x0 predictions (grid values or polynomial coefficients). */
export interface DXX0Params {
  space: 'x0';
  /** [B, N, ...positions, C] */
  x0Grid: tf.Tensor;
}

/** DX parameters in the student's u-space: X[n] = x_src − σ_src·uGrid[n] (for every n, both modes). */
export interface DXUParams {
  space: 'u';
  /** [B, N, ...positions, C] */
  uGrid: tf.Tensor;
}

export type DXParams = DXX0Params | DXUParams;

export type DXMode = 'grid' | 'polynomial';

export interface DXPolicyOptions {
  /** Shift of the policy's own time warp (intrinsic: keep the value the student was trained with). Default 1. */
  shift?: number;
  /** Raw-time span the grid covers below σ_src (intrinsic). Default 1. */
  segmentSize?: number;
  /** 'grid' (linear interpolation, default) or 'polynomial' (monomials in raw time elapsed since σ_src). */
  mode?: DXMode;
  /** σ floor in u = (x − x0)/max(σ, eps) and the smallest segment length. Default 1e-4. */
  eps?: number;
}

export interface DXPolicyState {
  readonly xSrc: tf.Tensor;
  readonly sigmaSrc: Float32Array;
  /** [B, N, ...positions, C] x0-space grid. */
  readonly x0Grid: tf.Tensor;
  readonly mode: DXMode;
  readonly shift: number;
  readonly eps: number;
  /** Per sample: raw time of σ_src, raw time where the grid ends, and the grid's raw length. */
  readonly rawSrc: Float64Array;
  readonly rawDst: Float64Array;
  readonly rawLength: Float64Array;
  /** Interpolation weights over the N grid entries at the given per-sample σ values (B × N). */
  weightsAt(sigma: ArrayLike<number>): Float32Array;
}

/**
 * A DX policy: x0(σ) = Σ_n w_n(σ)·X[n], u = (x − x0(σ))/max(σ, eps).
 * - grid: N points uniform in raw time over [r_dst, r_src] (index 0 at r_dst, the clean end; N−1 at r_src),
 *   r_dst = max(r_src − segmentSize, 0); w_n is the hat function max(0, 1 − |τ − n|) with
 *   τ = clamp((r − r_dst)/(r_src − r_dst), 0, 1)·(N − 1) — exactly linear interpolation, clamped outside.
 * - polynomial: w_n = (r_src − r)^n.
 * Raw time r = unwarp(σ, shift) with the policy's own shift.
 */
export class DXPolicy implements Policy, DXPolicyState {
  readonly family = 'dx';
  readonly batchSize: number;
  readonly numPoints: number;
  readonly rawSrc: Float64Array;
  readonly rawDst: Float64Array;
  readonly rawLength: Float64Array;

  constructor(
    readonly xSrc: tf.Tensor,
    readonly sigmaSrc: Float32Array,
    readonly x0Grid: tf.Tensor,
    readonly mode: DXMode,
    readonly shift: number,
    readonly segmentSize: number,
    readonly eps: number,
  ) {
    this.batchSize = xSrc.shape[0]!;
    this.numPoints = x0Grid.shape[1]!;
    this.rawSrc = new Float64Array(this.batchSize);
    this.rawDst = new Float64Array(this.batchSize);
    this.rawLength = new Float64Array(this.batchSize);
    for (let b = 0; b < this.batchSize; b++) {
      const rSrc = unwarp(sigmaSrc[b]!, shift);
      const rDst = Math.max(rSrc - segmentSize, 0);
      this.rawSrc[b] = rSrc;
      this.rawDst[b] = rDst;
      this.rawLength[b] = Math.max(rSrc - rDst, eps);
    }
  }

  weightsAt(sigma: ArrayLike<number>): Float32Array {
    const N = this.numPoints;
    const w = new Float32Array(this.batchSize * N);
    for (let b = 0; b < this.batchSize; b++) {
      const r = unwarp(Math.min(Math.max(sigma[b]!, 0), 1), this.shift);
      if (this.mode === 'grid') {
        if (N === 1) {
          w[b * N] = 1;
          continue;
        }
        const tau = Math.min(Math.max((r - this.rawDst[b]!) / this.rawLength[b]!, 0), 1) * (N - 1);
        for (let n = 0; n < N; n++) w[b * N + n] = Math.max(0, 1 - Math.abs(tau - n));
      } else {
        const dt = this.rawSrc[b]! - r;
        let p = 1;
        for (let n = 0; n < N; n++, p *= dt) w[b * N + n] = p;
      }
    }
    return w;
  }

  velocity(x: tf.Tensor, sigma: Sigma): tf.Tensor {
    assertTensor('x', x, { shape: this.xSrc.shape });
    assertSigma('sigma', sigma, this.batchSize);
    const values = sigmaValues(sigma, this.batchSize);
    const weights = this.weightsAt(values);
    return tf.tidy(() => {
      const w = tf.tensor(weights, [
        this.batchSize,
        this.numPoints,
        ...new Array<number>(x.rank - 1).fill(1),
      ]);
      const x0 = tf.sum(tf.mul(w, this.x0Grid), 1);
      return tf.div(tf.sub(x, x0), tf.maximum(sigmaColumn(sigma, x.rank), this.eps));
    });
  }

  /**
   * The whole rollout as one call of the family's fused kernel (`dxFusedRolloutKernel`, one tfjs kernel
   * name with a kernel per backend), run by core's `rollout` through `runFusedRollout`. The plan
   * (planDXRollout: per item the coefficients of x_start and of the grid entries) is computed here, in plain
   * JS, and passed as attributes; undefined when x is not a float32 tensor of x_src's shape.
   */
  fusedRolloutCall(x: tf.Tensor, segment: RolloutSegment): FusedRolloutCall | undefined {
    if (!canFuseRollout(x, this.xSrc)) return undefined;
    return {
      kernel: dxFusedRolloutKernel,
      inputs: { x, x0Grid: this.x0Grid },
      attrs: dxFusedRolloutAttrs(this, segment) as unknown as tf.NamedAttrMap,
    };
  }

  detach(): DXPolicy {
    return new DXPolicy(
      detachTensor(this.xSrc),
      this.sigmaSrc,
      detachTensor(this.x0Grid),
      this.mode,
      this.shift,
      this.segmentSize,
      this.eps,
    );
  }

  dispose(): void {
    tf.dispose([this.xSrc, this.x0Grid]);
  }
}

export interface DXParamShapeOptions {
  shape: readonly number[];
  /** Number of grid points or polynomial coefficients N (default 10). */
  numPoints?: number;
}

/**
 * The DX student head: one dense layer F → N·C per position, laid out as uGrid [B, N, …positions, C]; the
 * policy's shift and segment size are those of the schedule the student is trained for (intrinsic).
 */
const dxStudentHead: NonNullable<PolicyFamily['studentHead']> = {
  options: {
    numPoints: {
      type: 'integer',
      min: 1,
      default: 10,
      description: 'grid points (or polynomial coefficients) N',
    },
    mode: {
      type: 'string',
      choices: ['grid', 'polynomial'],
      default: 'grid',
      description:
        "'grid' (linear interpolation in raw time) or 'polynomial' (monomials in elapsed raw time)",
    },
  },
  // N = 1 is the single-x0 shortcut: one x0 prediction per step, followed along u = (x − x0)/σ
  label: (options) =>
    options.numPoints === 1
      ? 'single-x0 shortcut'
      : `DX N=${options.numPoints}${options.mode === 'polynomial' ? ' polynomial' : ''}`,
  build({ channels, options, shift, segmentSize }) {
    const mode = options.mode as DXMode;
    return {
      space: 'u',
      outputs: {
        uGrid: {
          per: 'position',
          shape: [options.numPoints as number, channels],
          layout: 'block-first',
          // from a teacher: every grid point starts as the teacher's prediction (polynomial: coefficient 0)
          fromTeacher: mode === 'grid' ? 'replicate' : 'first',
          layerName: 'head/grid',
        },
      },
      policyOptions: { shift, segmentSize, mode },
    };
  },
};

/**
 * π-ID trains DX students on the implied x0 (each state's velocity error times σ²): a DX policy's velocity
 * (x − x̂0(σ))/σ keeps a 1/σ sensitivity to its grid as σ → 0 (a GM policy's vanishes there), so the plain
 * velocity loss is dominated by the last states before σ = 0 and its gradients are heavy-tailed. Its N free
 * x0 values per step also learn more slowly than a GM's: learning rate 1e-3. Measured on a 6-D, 10-component
 * mixture (docs/BENCHMARKS.md, 4 steps): spread 4.66 → 1.19 (x0 weighting) → 1.10 (and lr 1e-3); log-density
 * gap −11.0 → −0.57 → −0.31 nats.
 */
const dxTraining: NonNullable<PolicyFamily['training']> = {
  options: {},
  policyOptions: () => ({}),
  lossWeighting: 'x0',
  learningRate: 1e-3,
  // The grid's late points of a step are sharp functions of x_src (which mode the step ends in): a 3-block MLP
  // smooths them, and its 4-step samples came out 10 % too wide (spread 1.124, −0.37 nats); 6 blocks: 1.041,
  // −0.13 (docs/BENCHMARKS.md). GM students did not gain from the extra depth on every mixture.
  mlpDepth: 6,
};

export type DXFamily = Omit<PolicyFamily<DXParams, DXPolicyOptions>, 'create' | 'paramShapes'> & {
  paramShapes(options: DXParamShapeOptions): { grid: number[] };
  create(params: DXParams, xSrc: tf.Tensor, sigmaSrc: Sigma, options?: DXPolicyOptions): DXPolicy;
};

/** Builds the DX policy family; `defaults` (shift, segmentSize, mode) apply unless overridden per call. */
export function createDXFamily(defaults: DXPolicyOptions = {}): DXFamily {
  return {
    specificationVersion: 'v2',
    name: 'dx',
    packageName: '@piflow/policy-dx',
    description: 'N x0 predictions over the step (a raw-time grid, or a polynomial), linearly interpolated',
    studentHead: dxStudentHead,
    training: dxTraining,
    fusedRollout: dxFusedRolloutKernel,
    paramShapes({ shape, numPoints = 10 }) {
      assertNumber('numPoints', numPoints, { min: 1, integer: true });
      if (!Array.isArray(shape) || shape.length < 2) {
        throw new InvalidArgumentError('shape', 'the shape of x, [B, ...positions, C]', String(shape));
      }
      return { grid: [shape[0]!, numPoints, ...shape.slice(1)] };
    },
    create(params, xSrc, sigmaSrc, options = {}) {
      const {
        shift = defaults.shift ?? 1,
        segmentSize = defaults.segmentSize ?? 1,
        mode = defaults.mode ?? 'grid',
        eps = defaults.eps ?? 1e-4,
      } = options;
      assertTensor('xSrc', xSrc, { minRank: 2 });
      const B = xSrc.shape[0]!;
      assertSigma('sigmaSrc', sigmaSrc, B, { allowZero: false });
      assertNumber('shift', shift, { min: 0, minExclusive: true });
      assertNumber('segmentSize', segmentSize, { min: 0, max: 1, minExclusive: true });
      assertOneOf('mode', mode, ['grid', 'polynomial']);
      assertNumber('eps', eps, { min: 0, minExclusive: true });
      const p = params as { space?: unknown; x0Grid?: unknown; uGrid?: unknown } | undefined;
      if (!p || (p.space !== 'x0' && p.space !== 'u')) {
        throw new InvalidArgumentError(
          'params',
          "DX parameters { space: 'x0', x0Grid } or { space: 'u', uGrid }",
          describeValue(p?.space ?? p),
        );
      }
      const key = p.space === 'x0' ? 'x0Grid' : 'uGrid';
      const grid = p[key];
      assertTensor(`params.${key}`, grid, { rank: xSrc.rank + 1 });
      const N = grid.shape[1]!;
      if (N < 1) throw new InvalidArgumentError(`params.${key}`, 'N ≥ 1 grid points', `N = ${N}`);
      assertTensor(`params.${key}`, grid, { shape: [B, N, ...xSrc.shape.slice(1)] });
      assertTensorValues(`params.${key}`, grid);
      const sigmaSrcValues = sigmaValues(sigmaSrc, B);
      const x0Grid =
        p.space === 'x0'
          ? grid.clone()
          : tf.tidy(() => {
              const s = tf.tensor(sigmaSrcValues, [B, 1, ...new Array<number>(xSrc.rank - 1).fill(1)]);
              return tf.sub(tf.expandDims(xSrc, 1), tf.mul(s, grid));
            });
      return new DXPolicy(xSrc.clone(), sigmaSrcValues, x0Grid, mode, shift, segmentSize, eps);
    },
  };
}

/** The DX family with default options (grid mode, shift 1, segment size 1). */
export const dx: DXFamily = createDXFamily();
