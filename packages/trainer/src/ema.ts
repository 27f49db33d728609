import * as tf from '@tensorflow/tfjs-core';

export type EMAOptions =
  /** Constant decay β. */
  | { decay: number; start?: number }
  /** Karras power EMA (reference): β_t = (1 − 1/t)^(γ + 1), t = steps since `start` + 1. */
  | { gamma: number; start?: number };

/** An exponential moving average of a student's variables, usable for sampling through `swap`. */
export class EMA {
  private shadow: tf.Tensor[];
  private updates = 0;

  constructor(
    private readonly variables: readonly tf.Variable[],
    readonly options: EMAOptions = { gamma: 7 },
  ) {
    this.shadow = variables.map((v) => tf.clone(v));
  }

  decayAt(step: number): number {
    const start = this.options.start ?? 0;
    if (step < start) return 0;
    if ('decay' in this.options) return this.options.decay;
    const t = step - start + 1;
    return (1 - 1 / t) ** (this.options.gamma + 1);
  }

  /** Updates the average after optimiser step `step` (0-based). */
  update(step: number): void {
    const beta = this.decayAt(step);
    this.updates += 1;
    this.shadow = this.shadow.map((s, i) => {
      const next = tf.tidy(() => tf.add(tf.mul(s, beta), tf.mul(this.variables[i]!, 1 - beta)));
      s.dispose();
      return next;
    });
  }

  /** Runs `fn` with the averaged weights loaded into the variables, then restores the live weights. */
  async swap<T>(fn: () => T | Promise<T>): Promise<T> {
    const live = this.variables.map((v) => tf.clone(v));
    this.variables.forEach((v, i) => v.assign(this.shadow[i]!));
    try {
      return await fn();
    } finally {
      this.variables.forEach((v, i) => v.assign(live[i]!));
      tf.dispose(live);
    }
  }

  /** Copies the averaged weights into the variables permanently (e.g. before export). */
  copyToVariables(): void {
    this.variables.forEach((v, i) => v.assign(this.shadow[i]!));
  }

  getState(): Float32Array[] {
    return this.shadow.map((t) => Float32Array.from(t.dataSync()));
  }

  /** `getState` reading the averages asynchronously (every backend). */
  async getStateAsync(): Promise<Float32Array[]> {
    return Promise.all(this.shadow.map(async (t) => Float32Array.from(await t.data())));
  }

  setState(arrays: readonly Float32Array[]): void {
    if (arrays.length !== this.variables.length) {
      throw new Error(
        `EMA state holds ${arrays.length} tensors but the student has ${this.variables.length} variables.`,
      );
    }
    tf.dispose(this.shadow);
    this.shadow = arrays.map((a, i) => tf.tensor(a, this.variables[i]!.shape));
  }

  dispose(): void {
    tf.dispose(this.shadow);
  }
}
