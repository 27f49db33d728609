import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors';
import { assertNumber, describeValue } from './validation';

export type EMAOptions =
  /**
   * Constant decay β. With `biasCorrection` the average starts from zero and is read as shadow / (1 − Πβ)
   * (Adam-style), so early averages are not pulled towards the initial weights; without it the average
   * starts at the variables' values.
   */
  | { decay: number; start?: number; biasCorrection?: boolean }
  /** Karras power EMA (π-Flow reference): β_t = (1 − 1/t)^(γ + 1), t = steps since `start` + 1. */
  | { gamma: number; start?: number };

/** Everything needed to continue an average exactly (checkpoints store it). */
export interface EMAState {
  /** The running averages (raw, before bias correction), in variable order. */
  shadows: Float32Array[];
  /** Updates applied so far. */
  updates: number;
  /** Π of the decays applied so far (the share of the zero start still in the shadows). */
  remaining: number;
}

function assertVariableList(name: string, variables: unknown): asserts variables is tf.Variable[] {
  if (!Array.isArray(variables) || variables.some((v) => !(v instanceof tf.Variable))) {
    throw new InvalidArgumentError(name, 'an array of tf.Variable', describeValue(variables));
  }
}

/**
 * An exponential moving average of a list of variables: one implementation for every trainer (teachers,
 * classifiers, π-ID students). `update(step)` after each optimiser step; `swap` samples with the averaged
 * weights; `copyTo` loads them for export; `getState`/`setState` continue a run exactly.
 */
export class EMA {
  readonly options: EMAOptions;
  private readonly tracked: tf.Variable[];
  private shadows: tf.Tensor[];
  private count = 0;
  private remainingShare = 1;

  constructor(variables: readonly tf.Variable[], options: EMAOptions = { gamma: 7 }) {
    assertVariableList('variables', variables);
    if (typeof options !== 'object' || options === null || !('decay' in options || 'gamma' in options)) {
      throw new InvalidArgumentError('options', '{ decay } or { gamma }', describeValue(options));
    }
    if ('decay' in options) assertNumber('options.decay', options.decay, { min: 0, max: 1 });
    else assertNumber('options.gamma', options.gamma, { min: 0 });
    if (options.start !== undefined) assertNumber('options.start', options.start, { min: 0, integer: true });
    this.options = options;
    this.tracked = [...variables];
    this.shadows = this.tracked.map((v) => (this.biasCorrected ? tf.zerosLike(v) : tf.clone(v)));
  }

  private get biasCorrected(): boolean {
    return 'decay' in this.options && this.options.biasCorrection === true;
  }

  /** Updates applied so far. */
  get updates(): number {
    return this.count;
  }

  /** The decay used by the update after optimiser step `step` (0-based). */
  decayAt(step: number): number {
    const start = this.options.start ?? 0;
    if (step < start) return 0;
    if ('decay' in this.options) return this.options.decay;
    const t = step - start + 1;
    return (1 - 1 / t) ** (this.options.gamma + 1);
  }

  /** Updates the average after optimiser step `step` (0-based; default: the number of updates so far). */
  update(step: number = this.count): void {
    const beta = this.decayAt(step);
    this.count += 1;
    this.remainingShare *= beta;
    const next = tf.tidy(() =>
      this.shadows.map((s, i) => tf.add(tf.mul(s, beta), tf.mul(this.tracked[i]!, 1 - beta))),
    );
    tf.dispose(this.shadows);
    this.shadows = next;
  }

  /** The averaged weights as tensors (bias-corrected where asked; the variables themselves before any update). */
  private averaged(): tf.Tensor[] {
    return tf.tidy(() =>
      this.shadows.map((s, i) => {
        if (!this.biasCorrected) return tf.clone(s);
        if (this.remainingShare >= 1) return tf.clone(this.tracked[i]!);
        return tf.div(s, 1 - this.remainingShare);
      }),
    );
  }

  /** Runs `fn` with the averaged weights loaded into the variables, then restores the live weights. */
  async swap<T>(fn: () => T | Promise<T>): Promise<T> {
    const live = this.tracked.map((v) => tf.clone(v));
    this.copyTo();
    try {
      return await fn();
    } finally {
      this.tracked.forEach((v, i) => v.assign(live[i]!));
      tf.dispose(live);
    }
  }

  /** Copies the averaged weights into `target` (default: the averaged variables themselves), e.g. before export. */
  copyTo(target: readonly tf.Variable[] = this.tracked): void {
    assertVariableList('target', target);
    if (target.length !== this.tracked.length) {
      throw new InvalidArgumentError('target', `${this.tracked.length} variables`, `${target.length}`);
    }
    target.forEach((v, i) => {
      const shape = this.tracked[i]!.shape;
      if (v.shape.length !== shape.length || v.shape.some((d, j) => d !== shape[j])) {
        throw new InvalidArgumentError(
          `target[${i}]`,
          `a variable of shape [${shape.join(', ')}]`,
          `shape [${v.shape.join(', ')}]`,
        );
      }
    });
    const values = this.averaged();
    target.forEach((v, i) => v.assign(values[i]!));
    tf.dispose(values);
  }

  /** The averaged weights as arrays (read asynchronously: every backend). */
  async getWeights(): Promise<Float32Array[]> {
    const values = this.averaged();
    try {
      return await Promise.all(values.map(async (t) => Float32Array.from(await t.data())));
    } finally {
      tf.dispose(values);
    }
  }

  /** The exact state, read synchronously (cpu and wasm). */
  getState(): EMAState {
    return {
      shadows: this.shadows.map((t) => Float32Array.from(t.dataSync())),
      updates: this.count,
      remaining: this.remainingShare,
    };
  }

  /** `getState` reading the averages asynchronously (every backend). */
  async getStateAsync(): Promise<EMAState> {
    return {
      shadows: await Promise.all(this.shadows.map(async (t) => Float32Array.from(await t.data()))),
      updates: this.count,
      remaining: this.remainingShare,
    };
  }

  /**
   * Restores a state from `getState`. Bare arrays are taken as finished averages (no bias correction left to
   * apply), e.g. weights exported elsewhere.
   */
  setState(state: EMAState | readonly Float32Array[]): void {
    const full: EMAState = Array.isArray(state)
      ? { shadows: state as Float32Array[], updates: this.count, remaining: 0 }
      : (state as EMAState);
    if (!Array.isArray(full?.shadows)) {
      throw new InvalidArgumentError('state', '{ shadows, updates, remaining }', describeValue(state));
    }
    assertNumber('state.updates', full.updates, { min: 0, integer: true });
    assertNumber('state.remaining', full.remaining, { min: 0, max: 1 });
    if (full.shadows.length !== this.tracked.length) {
      throw new InvalidArgumentError(
        'state.shadows',
        `${this.tracked.length} arrays (one per variable)`,
        `${full.shadows.length}`,
      );
    }
    full.shadows.forEach((a, i) => {
      if (!(a instanceof Float32Array) || a.length !== this.tracked[i]!.size) {
        throw new InvalidArgumentError(
          `state.shadows[${i}]`,
          `a Float32Array of ${this.tracked[i]!.size} values`,
          describeValue(a),
        );
      }
    });
    const next = full.shadows.map((a, i) => tf.tensor(a, this.tracked[i]!.shape, 'float32'));
    tf.dispose(this.shadows);
    this.shadows = next;
    this.count = full.updates;
    this.remainingShare = full.remaining;
  }

  dispose(): void {
    tf.dispose(this.shadows);
    this.shadows = [];
  }
}
