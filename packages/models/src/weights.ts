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

/** An exponential moving average of a list of variables (shadow copies, not trainable). */
export interface ExponentialMovingAverage {
  readonly decay: number;
  /** The shadow variables (same order and shapes as the tracked variables). */
  readonly shadows: readonly tf.Variable[];
  /** Number of updates so far. */
  readonly updates: number;
  /** shadow ← decay·shadow + (1 − decay)·variable (or the given decay for this update). */
  update(decay?: number): void;
  /** Copies the averaged weights into `variables` (default: the tracked ones), e.g. for sampling. */
  copyTo(variables?: readonly tf.Variable[]): void;
  /** The averaged weights as arrays (for checkpoints). */
  getWeights(): Float32Array[];
  setWeights(arrays: ReadonlyArray<ArrayLike<number>>): void;
  dispose(): void;
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
  let updates = 0;
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
      target.forEach((v, i) => {
        v.assign(shadows[i]!);
      });
    },
    getWeights() {
      return getWeights(shadows);
    },
    setWeights(arrays) {
      setWeights(shadows, arrays);
    },
    dispose() {
      for (const s of shadows) s.dispose();
    },
  };
}
