import { assertNumber, assertOneOf, InvalidArgumentError, type Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/** One split of a labelled image set. */
export interface ImageSplit {
  /** [count, H, W, C] channels-last pixels scaled to [−1, 1]. */
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

/** A labelled image set with a training split and a held-out split (MNIST, Fashion-MNIST). */
export interface ImageClassDataset {
  /** Its name as the CLI's `--data` spells it. */
  readonly name: string;
  /** Human-readable class names, index = label. */
  readonly classNames: readonly string[];
  /** [H, W, C] of one image. */
  readonly imageShape: readonly [number, number, number];
  train: ImageSplit;
  heldOut: ImageSplit;
  /** A random batch of `n` images [n, H, W, C] with their labels (int32 [n]). */
  batch(n: number, random: Random, split?: 'train' | 'heldOut'): { x: tf.Tensor4D; labels: tf.Tensor1D };
}

/** Builds the dataset object (with its batch sampler) from its two splits. */
export function imageClassDataset(
  meta: { name: string; classNames: readonly string[]; imageShape: readonly [number, number, number] },
  train: ImageSplit,
  heldOut: ImageSplit,
): ImageClassDataset {
  const [H, W, C] = meta.imageShape;
  const size = H * W * C;
  return {
    name: meta.name,
    classNames: meta.classNames,
    imageShape: meta.imageShape,
    train,
    heldOut,
    batch(n, random, split = 'train') {
      assertNumber('n', n, { min: 1, integer: true });
      assertOneOf('split', split, ['train', 'heldOut']);
      const source = split === 'train' ? train : heldOut;
      if (source.count === 0)
        throw new InvalidArgumentError('split', 'a split with images', `"${split}" (empty)`);
      const x = new Float32Array(n * size);
      const labels = new Int32Array(n);
      for (let b = 0; b < n; b++) {
        const i = random.integer(source.count);
        x.set(source.images.subarray(i * size, (i + 1) * size), b * size);
        labels[b] = source.labels[i]!;
      }
      return { x: tf.tensor4d(x, [n, H, W, C]), labels: tf.tensor1d(labels, 'int32') };
    },
  };
}
