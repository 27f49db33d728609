import type { DataType, Tensor } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors';

function isTensorLike(value: unknown): value is Tensor {
  return (
    typeof value === 'object' &&
    value !== null &&
    'shape' in value &&
    'dtype' in value &&
    'dataId' in value &&
    Array.isArray((value as Tensor).shape)
  );
}

/** A short description of a value for error messages. */
export function describeValue(value: unknown): string {
  if (isTensorLike(value)) {
    return `a ${value.dtype} tensor of shape [${value.shape.join(', ')}]${value.isDisposed ? ' (disposed)' : ''}`;
  }
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return typeof value;
}

export function isTensor(value: unknown): value is Tensor {
  return isTensorLike(value);
}

export interface TensorExpectation {
  /** Exact rank. */
  rank?: number;
  /** Minimum rank. */
  minRank?: number;
  /** Expected shape; `null` entries match any size. Checked only for the given length from the front. */
  shape?: ReadonlyArray<number | null>;
  dtype?: DataType;
}

function formatShape(shape: ReadonlyArray<number | null>): string {
  return `[${shape.map((d) => (d === null ? '*' : String(d))).join(', ')}]`;
}

/** Asserts that `value` is a live tensor with the given rank, shape and dtype (float32 by default). */
export function assertTensor(
  argument: string,
  value: unknown,
  expectation: TensorExpectation = {},
): asserts value is Tensor {
  const dtype = expectation.dtype ?? 'float32';
  const what = () => {
    const parts = [`a ${dtype} tensor`];
    if (expectation.shape) parts.push(`of shape ${formatShape(expectation.shape)}`);
    else if (expectation.rank !== undefined) parts.push(`of rank ${expectation.rank}`);
    else if (expectation.minRank !== undefined) parts.push(`of rank ≥ ${expectation.minRank}`);
    return parts.join(' ');
  };
  if (!isTensorLike(value) || value.isDisposed) {
    throw new InvalidArgumentError(argument, what(), describeValue(value));
  }
  if (value.dtype !== dtype) throw new InvalidArgumentError(argument, what(), describeValue(value));
  if (expectation.rank !== undefined && value.rank !== expectation.rank) {
    throw new InvalidArgumentError(argument, what(), describeValue(value));
  }
  if (expectation.minRank !== undefined && value.rank < expectation.minRank) {
    throw new InvalidArgumentError(argument, what(), describeValue(value));
  }
  if (expectation.shape) {
    const s = expectation.shape;
    if (value.rank !== s.length || s.some((d, i) => d !== null && d !== value.shape[i])) {
      throw new InvalidArgumentError(argument, what(), describeValue(value));
    }
  }
}

export interface NumberExpectation {
  min?: number;
  max?: number;
  /** Exclude `min` itself. */
  minExclusive?: boolean;
  /** Exclude `max` itself. */
  maxExclusive?: boolean;
  integer?: boolean;
}

function describeRange(e: NumberExpectation): string {
  const kind = e.integer ? 'an integer' : 'a finite number';
  if (e.min !== undefined && e.max !== undefined) {
    return `${kind} in ${e.minExclusive ? '(' : '['}${e.min}, ${e.max}${e.maxExclusive ? ')' : ']'}`;
  }
  if (e.min !== undefined) return `${kind} ${e.minExclusive ? '>' : '≥'} ${e.min}`;
  if (e.max !== undefined) return `${kind} ${e.maxExclusive ? '<' : '≤'} ${e.max}`;
  return kind;
}

/** Asserts that `value` is a finite number (optionally an integer) inside the given range. */
export function assertNumber(
  argument: string,
  value: unknown,
  expectation: NumberExpectation = {},
): asserts value is number {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!expectation.integer || Number.isInteger(value)) &&
    (expectation.min === undefined ||
      (expectation.minExclusive ? value > expectation.min : value >= expectation.min)) &&
    (expectation.max === undefined ||
      (expectation.maxExclusive ? value < expectation.max : value <= expectation.max));
  if (!ok) throw new InvalidArgumentError(argument, describeRange(expectation), describeValue(value));
}

/** Asserts that every entry of `values` is a finite number in the given range; names the first bad index. */
export function assertNumbers(
  argument: string,
  values: ArrayLike<number>,
  expectation: NumberExpectation = {},
): void {
  for (let i = 0; i < values.length; i++) assertNumber(`${argument}[${i}]`, values[i], expectation);
}

export function assertOneOf<T extends string>(
  argument: string,
  value: unknown,
  allowed: readonly T[],
): asserts value is T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new InvalidArgumentError(
      argument,
      `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
      describeValue(value),
    );
  }
}

export interface TensorValueExpectation {
  /** Allow −∞ (e.g. log-weights of components with zero weight). NaN and +∞ are never allowed. */
  allowNegativeInfinity?: boolean;
  /** Every value ≥ min (> min with `minExclusive`). */
  min?: number;
  minExclusive?: boolean;
}

/** Whether the active backend reads values synchronously (tfjs's WebGPU backend in Node cannot). */
function readsSynchronously(): boolean {
  return tf.getBackend() !== 'webgpu';
}

/**
 * Asserts that a float32 tensor's values are finite (and in range): a sum (and a min when a range is asked)
 * read back as one or two numbers; only a non-finite sum runs the exact element test.
 * On backends without synchronous reads (WebGPU) the values are not checked here (shapes still are, by
 * `assertTensor`); docs/BENCHMARKS.md gives the cost on wasm.
 */
export function assertTensorValues(
  argument: string,
  value: Tensor,
  expectation: TensorValueExpectation = {},
): void {
  if (value.size === 0 || !readsSynchronously()) return;
  // Fast path: one sum (NaN and ±∞ propagate into it); the exact test only when the sum is not finite.
  const { min } = expectation;
  const stats = tf.tidy(() => {
    const sum = tf.sum(value);
    return min === undefined ? sum : tf.stack([sum, tf.min(value)]);
  });
  const [sum, minimum] = stats.dataSync() as unknown as [number, number];
  stats.dispose();
  const bad =
    !Number.isFinite(sum) &&
    tf.tidy(() => {
      const invalid = expectation.allowNegativeInfinity
        ? tf.logicalOr(tf.isNaN(value), tf.equal(value, Number.POSITIVE_INFINITY))
        : tf.logicalNot(tf.isFinite(value));
      return tf.any(invalid).dataSync()[0] === 1;
    });
  if (bad) {
    throw new InvalidArgumentError(
      argument,
      `finite values${expectation.allowNegativeInfinity ? ' (or −Infinity)' : ''}`,
      `a tensor holding NaN or ${expectation.allowNegativeInfinity ? '+' : '±'}Infinity`,
    );
  }
  if (min !== undefined && (expectation.minExclusive ? !(minimum > min) : !(minimum >= min))) {
    throw new InvalidArgumentError(
      argument,
      `values ${expectation.minExclusive ? '>' : '≥'} ${min}`,
      `a tensor whose smallest value is ${minimum}`,
    );
  }
}
