import * as tf from '@tensorflow/tfjs-core';

/** ‖a − b‖₂ / ‖b‖₂ over all entries (b is the reference). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relativeError: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/**
 * A tensor's values, read asynchronously: the suites also run on tfjs's WebGPU backend in Node (Dawn),
 * which cannot read GPU-resident values synchronously.
 */
export async function readFloat32(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

/** The same, widened to float64 (for float64 references). */
export async function readFloat64(t: tf.Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

/** Largest |a − b|. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  // A tensor has no `length`: comparing two would silently give 0 (a test that cannot fail).
  if (typeof a?.length !== 'number' || typeof b?.length !== 'number' || a.length !== b.length) {
    throw new Error(
      `maxAbsDifference: expected two arrays of the same length (typed arrays or number[]), got lengths ${a?.length} and ${b?.length}`,
    );
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Runs `fn` and returns its result and how many tensors it left behind beyond the ones it returned
 * (0 = no leak). Tensors found in the result (one level deep, arrays and objects) are counted as returned.
 */
export function countLeaks<T>(fn: () => T): { result: T; leaked: number } {
  const before = tf.memory().numTensors;
  const result = fn();
  const returned = collectTensors(result).length;
  return { result, leaked: tf.memory().numTensors - before - returned };
}

export function collectTensors(value: unknown): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  const visit = (v: unknown, depth: number) => {
    if (v instanceof tf.Tensor) out.push(v);
    else if (depth < 2 && v && typeof v === 'object') {
      for (const child of Array.isArray(v) ? v : Object.values(v)) visit(child, depth + 1);
    }
  };
  visit(value, 0);
  return out;
}
