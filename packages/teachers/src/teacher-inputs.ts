import {
  assertSigma,
  assertTensor,
  type Condition,
  describeValue,
  InvalidArgumentError,
  isTensor,
  type Sigma,
  type SigmaRange,
  type TeacherMetadata,
} from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';

/** A teacher that runs in this process and can also answer synchronously (tfjs models, analytic flows). */
export interface LocalTeacher {
  readonly metadata: TeacherMetadata;
  velocity(x: tf.Tensor, sigma: Sigma, condition?: Condition): Promise<tf.Tensor>;
  /** The same velocity, computed synchronously. */
  velocitySync(x: tf.Tensor, sigma: Sigma, condition?: Condition): tf.Tensor;
  dispose?(): void;
}

/** Checks x against the teacher's layout / sample shape (channels last, batch first). */
export function assertTeacherX(x: unknown, metadata: TeacherMetadata): asserts x is tf.Tensor {
  const sampleShape = metadata.sampleShape;
  if (sampleShape) {
    assertTensor('x', x, { shape: [null, ...sampleShape] });
    return;
  }
  // 'vector' teachers take [B, C] or, position by position, [B, …, C]
  const rank = metadata.layout === 'tokens' ? 3 : undefined;
  if (metadata.layout === 'image') assertTensor('x', x, { rank: 4 });
  else if (rank !== undefined) assertTensor('x', x, { rank });
  else assertTensor('x', x, { minRank: 2 });
}

/**
 * Checks the conditioning inputs a teacher needs: each named one is present, float32 (unless listed in
 * `dtypes`) and has the batch size of x.
 */
export function assertCondition(
  condition: Condition | undefined,
  names: readonly string[],
  batch: number,
  dtypes: Readonly<Record<string, tf.DataType>> = {},
): void {
  if (names.length === 0) return;
  if (condition === undefined || condition === null || typeof condition !== 'object') {
    throw new InvalidArgumentError(
      'condition',
      `an object with the conditioning inputs ${names.map((n) => `\`${n}\``).join(', ')}`,
      describeValue(condition),
    );
  }
  for (const name of names) {
    const value = condition[name];
    if (!isTensor(value)) {
      throw new InvalidArgumentError(
        `condition.${name}`,
        `a tensor with batch size ${batch} (this teacher needs ${names.map((n) => `\`${n}\``).join(', ')})`,
        describeValue(value),
      );
    }
    assertTensor(`condition.${name}`, value, { minRank: 1, dtype: dtypes[name] ?? value.dtype });
    if (value.shape[0] !== batch) {
      throw new InvalidArgumentError(
        `condition.${name}`,
        `a tensor with batch size ${batch} (the batch size of x)`,
        describeValue(value),
      );
    }
  }
}

/** Validates x, σ and the condition of a teacher call in one place. */
export function assertTeacherCall(
  x: unknown,
  sigma: unknown,
  condition: Condition | undefined,
  metadata: TeacherMetadata,
  sigmaRange: SigmaRange = {},
): asserts x is tf.Tensor {
  assertTeacherX(x, metadata);
  assertSigma('sigma', sigma, x.shape[0]!, sigmaRange);
  assertCondition(condition, metadata.conditionNames ?? [], x.shape[0]!);
}

/** Wraps a synchronous velocity function into the asynchronous `Teacher` contract. */
export function asyncVelocity(
  sync: (x: tf.Tensor, sigma: Sigma, condition?: Condition) => tf.Tensor,
): (x: tf.Tensor, sigma: Sigma, condition?: Condition) => Promise<tf.Tensor> {
  return async (x, sigma, condition) => sync(x, sigma, condition);
}
