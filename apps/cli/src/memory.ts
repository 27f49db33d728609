import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { UsageError } from './errors';

/** tfjs-wasm's heap is a 32-bit wasm memory: 4 GiB at most, of which ~2 GiB is usable for tensors in practice. */
const WASM_LIMIT = 2 * 1024 ** 3;

/** Bytes the active backend can give tensors: the wasm heap, else three quarters of the machine's memory. */
export function memoryLimit(): number {
  const machine = 0.75 * os.totalmem();
  return tf.getBackend() === 'wasm' ? Math.min(WASM_LIMIT, machine) : machine;
}

const gb = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(bytes < 1024 ** 3 ? 2 : 1)} GB`;

/**
 * Refuses, before any work starts, a size whose tensors cannot fit: `bytes` is an estimate of the peak
 * memory of what `flag value` asks for (float32 tensors alive at once).
 */
export function checkMemory(flag: string, value: number, bytes: number, what: string): void {
  const limit = memoryLimit();
  if (bytes > limit) {
    throw new UsageError(
      `${flag} ${value} needs about ${gb(bytes)} for ${what}; the ${tf.getBackend()} backend here has about ${gb(limit)}.`,
      `use a smaller ${flag} (at most about ${Math.max(1, Math.floor((value * limit) / bytes))}).`,
    );
  }
}

/** Floats in one sample of `shape`. */
export function sampleSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
