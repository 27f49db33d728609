import { assertNumber, describeValue, InvalidArgumentError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

function assertVariables(argument: string, variables: unknown): asserts variables is readonly tf.Variable[] {
  if (!Array.isArray(variables) || variables.some((v) => !(v instanceof tf.Variable) || v.isDisposed)) {
    throw new InvalidArgumentError(argument, 'an array of live tf.Variable', describeValue(variables));
  }
}

/** Copies of the variables' values (Float32Array each, in order): checkpoint-ready and backend-independent. */
export function getWeights(variables: readonly tf.Variable[]): Float32Array[] {
  assertVariables('variables', variables);
  return variables.map((v) => {
    if (v.dtype !== 'float32') {
      throw new InvalidArgumentError('variables', 'float32 variables', `a ${v.dtype} variable ${v.name}`);
    }
    // dataSync may return the backend's own buffer (cpu): copy it.
    return Float32Array.from(v.dataSync() as Float32Array);
  });
}

/**
 * Assigns `arrays[i]` to `variables[i]`. Checks the count and each length against the variable's shape
 * first, so a mismatched checkpoint changes nothing; errors name the index, the variable and its shape.
 */
export function setWeights(
  variables: readonly tf.Variable[],
  arrays: ReadonlyArray<ArrayLike<number>>,
): void {
  assertVariables('variables', variables);
  if (!Array.isArray(arrays)) {
    throw new InvalidArgumentError('arrays', 'an array of Float32Array', describeValue(arrays));
  }
  if (arrays.length !== variables.length) {
    throw new InvalidArgumentError(
      'arrays',
      `${variables.length} weight arrays (one per variable)`,
      `${arrays.length}`,
    );
  }
  variables.forEach((v, i) => {
    const a = arrays[i];
    if (!a || typeof a !== 'object' || typeof a.length !== 'number') {
      throw new InvalidArgumentError(
        `arrays[${i}]`,
        `a Float32Array for variable ${v.name}`,
        describeValue(a),
      );
    }
    if (a.length !== v.size) {
      throw new InvalidArgumentError(
        `arrays[${i}]`,
        `${v.size} values for variable ${v.name} of shape [${v.shape.join(', ')}]`,
        `${a.length} values`,
      );
    }
  });
  tf.tidy(() => {
    variables.forEach((v, i) => {
      const a = arrays[i]!;
      v.assign(tf.tensor(a instanceof Float32Array ? a : Float32Array.from(a), v.shape, 'float32'));
    });
  });
}

/**
 * An exponential moving average of a list of variables (shadow copies, not trainable), bias-corrected: the
 * shadows start at the variables' initial values θ₀, and after updates with decays d₁…dₙ the average reported
 * is (shadow − r·θ₀) / (1 − r) with r = Πdᵢ — the initial values' share is removed (as in Adam's bias
 * correction), so a short run is not pulled back toward its random initialisation (with d = 0.999 that share
 * is still 13.5 % after 2 000 updates).
 */
export interface ExponentialMovingAverage {
  readonly decay: number;
  /** The raw shadow variables (same order and shapes as the tracked variables), before bias correction. */
  readonly shadows: readonly tf.Variable[];
  /** Number of updates so far. */
  readonly updates: number;
  /** shadow ← decay·shadow + (1 − decay)·variable (or the given decay for this update). */
  update(decay?: number): void;
  /** Copies the (bias-corrected) averaged weights into `variables` (default: the tracked ones). */
  copyTo(variables?: readonly tf.Variable[]): void;
  /** The bias-corrected averaged weights as arrays (for checkpoints). */
  getWeights(): Float32Array[];
  /** Restores averaged weights (from `getWeights`); later updates continue that average. */
  setWeights(arrays: ReadonlyArray<ArrayLike<number>>): void;
  /**
   * The exact state (raw shadows, the initial values while their share is kept, that share and the update
   * count), read asynchronously: {@link setState} continues from it exactly as if never interrupted.
   */
  getState(): Promise<ExponentialMovingAverageState>;
  setState(state: ExponentialMovingAverageState): void;
  dispose(): void;
}

/** See {@link ExponentialMovingAverage.getState}. */
export interface ExponentialMovingAverageState {
  shadows: Float32Array[];
  /** θ₀, while its share r is above float32 resolution. */
  initial?: Float32Array[];
  /** r = Π dᵢ. */
  remaining: number;
  updates: number;
}

/** Starts an EMA of `variables` at their current values. */
export function createExponentialMovingAverage(
  variables: readonly tf.Variable[],
  decay: number,
): ExponentialMovingAverage {
  assertVariables('variables', variables);
  assertNumber('decay', decay, { min: 0, max: 1 });
  const tracked = [...variables];
  const shadows = tracked.map((v) => tf.variable(v, false));
  // θ₀ and r = Π dᵢ for the bias correction; θ₀ is dropped once its share is below float32 resolution.
  let initial: tf.Tensor[] | undefined = tracked.map((v) => tf.clone(v));
  let remaining = 1;
  let updates = 0;
  const dropInitial = () => {
    if (initial) tf.dispose(initial);
    initial = undefined;
  };
  const corrected = (): tf.Tensor[] =>
    tf.tidy(() =>
      shadows.map((s, i) =>
        initial && remaining > 0 && remaining < 1
          ? tf.div(tf.sub(s, tf.mul(initial[i]!, remaining)), 1 - remaining)
          : tf.clone(s),
      ),
    );
  return {
    decay,
    shadows,
    get updates() {
      return updates;
    },
    update(d = decay) {
      assertNumber('decay', d, { min: 0, max: 1 });
      tf.tidy(() => {
        shadows.forEach((s, i) => {
          s.assign(tf.add(tf.mul(s, d), tf.mul(tracked[i]!, 1 - d)));
        });
      });
      updates++;
      remaining *= d;
      if (remaining < 1e-9) dropInitial();
    },
    copyTo(target = tracked) {
      assertVariables('variables', target);
      if (target.length !== shadows.length) {
        throw new InvalidArgumentError('variables', `${shadows.length} variables`, `${target.length}`);
      }
      target.forEach((v, i) => {
        const s = shadows[i]!;
        if (v.shape.length !== s.shape.length || v.shape.some((d, j) => d !== s.shape[j])) {
          throw new InvalidArgumentError(
            `variables[${i}]`,
            `a variable of shape [${s.shape.join(', ')}]`,
            `shape [${v.shape.join(', ')}]`,
          );
        }
      });
      const values = corrected();
      target.forEach((v, i) => {
        v.assign(values[i]!);
      });
      tf.dispose(values);
    },
    getWeights() {
      const values = corrected();
      const arrays = values.map((t) => Float32Array.from(t.dataSync()));
      tf.dispose(values);
      return arrays;
    },
    setWeights(arrays) {
      setWeights(shadows, arrays);
      // The restored values are an average already: no initial share to remove.
      dropInitial();
      remaining = 0;
    },
    async getState() {
      const read = (tensors: readonly tf.Tensor[]) =>
        Promise.all(tensors.map(async (t) => Float32Array.from(await t.data())));
      return {
        shadows: await read(shadows),
        ...(initial ? { initial: await read(initial) } : {}),
        remaining,
        updates,
      };
    },
    setState(state) {
      assertNumber('state.remaining', state?.remaining, { min: 0, max: 1 });
      assertNumber('state.updates', state.updates, { min: 0, integer: true });
      if (state.initial && state.initial.length !== tracked.length) {
        throw new InvalidArgumentError(
          'state.initial',
          `${tracked.length} arrays`,
          `${state.initial.length}`,
        );
      }
      setWeights(shadows, state.shadows);
      dropInitial();
      if (state.initial) {
        initial = state.initial.map((a, i) => tf.tensor(a, tracked[i]!.shape, 'float32'));
      }
      remaining = state.remaining;
      updates = state.updates;
    },
    dispose() {
      for (const s of shadows) s.dispose();
      dropInitial();
    },
  };
}
