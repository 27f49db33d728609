import { describeValue, InvalidArgumentError } from '@piflow/core';
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
