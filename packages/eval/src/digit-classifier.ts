import { assertNumber, assertTensor, createRandom, describeValue, InvalidArgumentError } from '@piflow/core';
import {
  type ConvLayer,
  conv3x3,
  createConv3x3,
  createDense,
  type DenseLayer,
  dense,
  type NamedVariable,
  silu,
} from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A small convolutional digit classifier whose penultimate features give the image metrics of π-Flow's MNIST
 * results: a Fréchet distance on those features (an "FID" for digits), the class accuracy of conditional
 * samples and per-class diversity. Channels-last images [B, H, W, 1] in [−1, 1].
 */
export interface DigitClassifierConfig {
  /**
   * Channels of the three 3×3 conv stages (2×2 average pooling between them; the last stage's H/4 × W/4 map is
   * flattened into the feature layer). Default [16, 32, 64].
   */
  channels: [number, number, number];
  /** Size of the penultimate feature vector. Default 64. */
  featureDim: number;
  /** Number of classes. Default 10. */
  numClasses: number;
  /** Image height and width (divisible by 4). Default 28. */
  imageSize: number;
  /** Seed of the initial weights. Default 0. */
  seed: number;
}

export interface DigitClassifier {
  readonly config: DigitClassifierConfig;
  readonly variables: readonly tf.Variable[];
  readonly variableNames: readonly string[];
  /** Penultimate features [B, featureDim] of images [B, H, W, 1]. Differentiable. */
  features(images: tf.Tensor4D): tf.Tensor2D;
  /** Class logits [B, numClasses]. Differentiable. */
  logits(images: tf.Tensor4D): tf.Tensor2D;
  /** Class logits from penultimate features [B, featureDim] (the last layer alone). */
  logitsFromFeatures(features: tf.Tensor2D): tf.Tensor2D;
  dispose(): void;
}

/** Images with their labels, e.g. a split of `loadMnist()` (pixels channels-last, row-major). */
export interface LabelledImages {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

export function createDigitClassifier(options: Partial<DigitClassifierConfig> = {}): DigitClassifier {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'an options object', describeValue(options));
  }
  const channels = options.channels ?? [16, 32, 64];
  if (
    !Array.isArray(channels) ||
    channels.length !== 3 ||
    channels.some((c) => !Number.isInteger(c) || c < 1)
  ) {
    throw new InvalidArgumentError(
      'options.channels',
      'three positive integers, e.g. [16, 32, 64]',
      describeValue(channels),
    );
  }
  const config: DigitClassifierConfig = {
    channels: [...channels] as [number, number, number],
    featureDim: options.featureDim ?? 64,
    numClasses: options.numClasses ?? 10,
    imageSize: options.imageSize ?? 28,
    seed: options.seed ?? 0,
  };
  assertNumber('options.featureDim', config.featureDim, { min: 1, integer: true });
  assertNumber('options.numClasses', config.numClasses, { min: 2, integer: true });
  assertNumber('options.imageSize', config.imageSize, { min: 4, integer: true });
  if (config.imageSize % 4 !== 0) {
    throw new InvalidArgumentError('options.imageSize', 'a multiple of 4', String(config.imageSize));
  }
  assertNumber('options.seed', config.seed, { integer: true });

  const random = createRandom(config.seed);
  const [c1, c2, c3] = config.channels;
  const convs: ConvLayer[] = [
    createConv3x3('classifier/conv1', 1, c1, random),
    createConv3x3('classifier/conv2', c1, c2, random),
    createConv3x3('classifier/conv3', c2, c3, random),
  ];
  const cells = (config.imageSize / 4) ** 2;
  const hidden: DenseLayer = createDense('classifier/features', cells * c3, config.featureDim, random);
  const head: DenseLayer = createDense('classifier/logits', config.featureDim, config.numClasses, random);
  const named: NamedVariable[] = [
    ...convs.flatMap((c) => [c.filter, c.bias]),
    hidden.kernel,
    hidden.bias,
    head.kernel,
    head.bias,
  ];
  const variables = named.map((n) => n.variable);
  const variableNames = named.map((n) => n.name);

  const check = (images: tf.Tensor4D) => {
    assertTensor('images', images, { rank: 4, dtype: 'float32' });
    const [, h, w, c] = images.shape;
    if (h !== config.imageSize || w !== config.imageSize || c !== 1) {
      throw new InvalidArgumentError(
        'images',
        `a [B, ${config.imageSize}, ${config.imageSize}, 1] tensor`,
        describeValue(images),
      );
    }
  };
  const features = (images: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      let h: tf.Tensor = silu(conv3x3(images, convs[0]!));
      h = tf.avgPool(h as tf.Tensor4D, 2, 2, 'valid');
      h = silu(conv3x3(h, convs[1]!));
      h = tf.avgPool(h as tf.Tensor4D, 2, 2, 'valid');
      h = silu(conv3x3(h, convs[2]!));
      const flat = tf.reshape(h, [h.shape[0]!, cells * c3]);
      return silu(dense(flat, hidden)) as tf.Tensor2D;
    });
  return {
    config,
    variables,
    variableNames,
    features(images) {
      check(images);
      return features(images);
    },
    logits(images) {
      check(images);
      return tf.tidy(() => dense(features(images), head) as tf.Tensor2D);
    },
    logitsFromFeatures(f) {
      assertTensor('features', f, { rank: 2, dtype: 'float32' });
      if (f.shape[1] !== config.featureDim) {
        throw new InvalidArgumentError('features', `a [B, ${config.featureDim}] tensor`, describeValue(f));
      }
      return tf.tidy(() => dense(f, head) as tf.Tensor2D);
    },
    dispose() {
      for (const v of variables) v.dispose();
    },
  };
}

export function checkClassifier(classifier: DigitClassifier): void {
  if (
    typeof classifier !== 'object' ||
    classifier === null ||
    typeof classifier.features !== 'function' ||
    !Array.isArray(classifier.variables)
  ) {
    throw new InvalidArgumentError(
      'classifier',
      'a digit classifier (createDigitClassifier)',
      describeValue(classifier),
    );
  }
}

export function checkLabelled(name: string, data: LabelledImages, size: number): void {
  if (
    typeof data !== 'object' ||
    data === null ||
    !(data.images instanceof Float32Array) ||
    !(data.labels instanceof Int32Array)
  ) {
    throw new InvalidArgumentError(
      name,
      '{ images: Float32Array, labels: Int32Array, count }',
      describeValue(data),
    );
  }
  assertNumber(`${name}.count`, data.count, { min: 1, integer: true });
  if (data.images.length !== data.count * size * size || data.labels.length !== data.count) {
    throw new InvalidArgumentError(
      name,
      `${data.count} images of ${size}×${size} pixels and ${data.count} labels`,
      `${data.images.length} pixels and ${data.labels.length} labels`,
    );
  }
}

/** Runs `fn` over images in batches; returns the concatenated rows as a Float32Array. */
function mapBatches(
  images: Float32Array,
  count: number,
  size: number,
  width: number,
  batchSize: number,
  fn: (x: tf.Tensor4D) => tf.Tensor2D,
): Float32Array {
  const out = new Float32Array(count * width);
  for (const { start, rows } of batches(images, count, size, batchSize, fn)) {
    out.set(rows.dataSync(), start * width);
    rows.dispose();
  }
  return out;
}

/** {@link mapBatches} reading each batch asynchronously (every backend, WebGPU in Node included). */
async function mapBatchesAsync(
  images: Float32Array,
  count: number,
  size: number,
  width: number,
  batchSize: number,
  fn: (x: tf.Tensor4D) => tf.Tensor2D,
): Promise<Float32Array> {
  const out = new Float32Array(count * width);
  for (const { start, rows } of batches(images, count, size, batchSize, fn)) {
    out.set(await rows.data(), start * width);
    rows.dispose();
  }
  return out;
}

function* batches(
  images: Float32Array,
  count: number,
  size: number,
  batchSize: number,
  fn: (x: tf.Tensor4D) => tf.Tensor2D,
): Generator<{ start: number; rows: tf.Tensor2D }> {
  const pixels = size * size;
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    yield {
      start,
      rows: tf.tidy(() =>
        fn(tf.tensor4d(images.subarray(start * pixels, (start + n) * pixels), [n, size, size, 1])),
      ),
    };
  }
}

function checkImages(classifier: DigitClassifier, images: Float32Array): number {
  const pixels = classifier.config.imageSize ** 2;
  if (!(images instanceof Float32Array) || images.length === 0 || images.length % pixels !== 0) {
    throw new InvalidArgumentError(
      'images',
      `a Float32Array of whole ${classifier.config.imageSize}×${classifier.config.imageSize} images`,
      describeValue(images),
    );
  }
  return images.length / pixels;
}

/** Penultimate features [count × featureDim] (row-major) of images given as a flat Float32Array. */
export function digitFeatures(
  classifier: DigitClassifier,
  images: Float32Array,
  options: { batchSize?: number } = {},
): Float32Array {
  checkClassifier(classifier);
  const count = checkImages(classifier, images);
  const { imageSize, featureDim } = classifier.config;
  return mapBatches(images, count, imageSize, featureDim, options.batchSize ?? 250, (x) =>
    classifier.features(x),
  );
}

/** {@link digitFeatures} reading the network's outputs asynchronously (every backend, WebGPU in Node included). */
export async function digitFeaturesAsync(
  classifier: DigitClassifier,
  images: Float32Array,
  options: { batchSize?: number } = {},
): Promise<Float32Array> {
  checkClassifier(classifier);
  const count = checkImages(classifier, images);
  const { imageSize, featureDim } = classifier.config;
  return mapBatchesAsync(images, count, imageSize, featureDim, options.batchSize ?? 250, (x) =>
    classifier.features(x),
  );
}

function predictedClasses(classifier: DigitClassifier) {
  return (x: tf.Tensor4D) =>
    tf.reshape(tf.cast(tf.argMax(classifier.logits(x), 1), 'float32'), [-1, 1]) as tf.Tensor2D;
}

/** Predicted classes of images given as a flat Float32Array. */
export function classifyDigits(
  classifier: DigitClassifier,
  images: Float32Array,
  options: { batchSize?: number } = {},
): Int32Array {
  checkClassifier(classifier);
  const count = checkImages(classifier, images);
  const { imageSize } = classifier.config;
  return Int32Array.from(
    mapBatches(images, count, imageSize, 1, options.batchSize ?? 250, predictedClasses(classifier)),
  );
}

/** {@link classifyDigits} reading the network's outputs asynchronously (every backend, WebGPU in Node included). */
export async function classifyDigitsAsync(
  classifier: DigitClassifier,
  images: Float32Array,
  options: { batchSize?: number } = {},
): Promise<Int32Array> {
  checkClassifier(classifier);
  const count = checkImages(classifier, images);
  const { imageSize } = classifier.config;
  return Int32Array.from(
    await mapBatchesAsync(
      images,
      count,
      imageSize,
      1,
      options.batchSize ?? 250,
      predictedClasses(classifier),
    ),
  );
}

function accuracyOf(predicted: Int32Array, data: LabelledImages): number {
  let correct = 0;
  for (let i = 0; i < data.count; i++) if (predicted[i] === data.labels[i]) correct++;
  return correct / data.count;
}

/** Fraction of images whose predicted class is their label. */
export function digitAccuracy(classifier: DigitClassifier, data: LabelledImages): number {
  checkClassifier(classifier);
  checkLabelled('data', data, classifier.config.imageSize);
  return accuracyOf(classifyDigits(classifier, data.images), data);
}

/** {@link digitAccuracy} reading the network's outputs asynchronously (every backend, WebGPU in Node included). */
export async function digitAccuracyAsync(classifier: DigitClassifier, data: LabelledImages): Promise<number> {
  checkClassifier(classifier);
  checkLabelled('data', data, classifier.config.imageSize);
  return accuracyOf(await classifyDigitsAsync(classifier, data.images), data);
}
