import {
  AdamW,
  assertNumber,
  cosineDecay,
  createRandom,
  InvalidArgumentError,
  Random,
  registerGradients,
} from '@piflow/core';
import { ensureWasmTrainingKernels } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import {
  checkClassifier,
  checkLabelled,
  type DigitClassifier,
  type LabelledImages,
} from './digit-classifier';

export interface TrainDigitClassifierOptions {
  /** Optimiser steps. Default 1500. */
  steps?: number;
  /** Default 64. */
  batchSize?: number;
  /** Adam learning rate (cosine-decayed to 5 % of it over `steps`). Default 2e-3. Ignored with an `optimizer`. */
  learningRate?: number;
  /** Largest random translation in pixels (data augmentation). Default 2. */
  maxShift?: number;
  random?: Random | number;
  /** Called after every step (awaited: a checkpoint can be written there). */
  onStep?: (info: { step: number; loss: number }) => void | Promise<void>;
  signal?: AbortSignal;
  /** Steps already done (a resumed run): training continues at `startStep + 1` on the same schedule. */
  startStep?: number;
  /**
   * The optimizer to continue with (its state is kept; the caller disposes it), e.g. restored from a
   * checkpoint. Default: a new {@link digitClassifierOptimizer}.
   */
  optimizer?: AdamW;
}

/**
 * The classifier's optimizer: the core's AdamW with β = (0.9, 0.999), no weight decay, and the learning rate
 * cosine-decayed from `learningRate` to 5 % of it over `steps` updates.
 */
export function digitClassifierOptimizer(
  classifier: DigitClassifier,
  options: { steps: number; learningRate?: number },
): AdamW {
  checkClassifier(classifier);
  assertNumber('options.steps', options.steps, { min: 1, integer: true });
  const steps = options.steps;
  return new AdamW(classifier.variables, {
    learningRate: options.learningRate ?? 2e-3,
    beta1: 0.9,
    beta2: 0.999,
    schedule: cosineDecay(steps, 0.05),
  });
}

/**
 * Trains the classifier with cross-entropy (AdamW, cosine decay, random translations). Returns the steps done
 * (counting `startStep`) and the losses of this call. Leaves no tensors behind (a given optimizer is kept).
 */
export async function trainDigitClassifier(
  classifier: DigitClassifier,
  data: LabelledImages,
  options: TrainDigitClassifierOptions = {},
): Promise<{ steps: number; losses: Float32Array; stepsPerSecond: number }> {
  checkClassifier(classifier);
  const size = classifier.config.imageSize;
  checkLabelled('data', data, size);
  const steps = options.steps ?? 1500;
  const batchSize = options.batchSize ?? 64;
  const learningRate = options.learningRate ?? 2e-3;
  const maxShift = options.maxShift ?? 2;
  assertNumber('options.steps', steps, { min: 0, integer: true });
  assertNumber('options.batchSize', batchSize, { min: 1, integer: true });
  assertNumber('options.learningRate', learningRate, { min: 0, minExclusive: true });
  assertNumber('options.maxShift', maxShift, { min: 0, max: size - 1, integer: true });
  const { numClasses } = classifier.config;
  for (const label of data.labels) {
    if (label < 0 || label >= numClasses) {
      throw new InvalidArgumentError('data.labels', `labels in [0, ${numClasses})`, String(label));
    }
  }
  const startStep = options.startStep ?? 0;
  assertNumber('options.startStep', startStep, { min: 0, max: steps, integer: true });
  if (options.optimizer !== undefined && !(options.optimizer instanceof AdamW)) {
    throw new InvalidArgumentError(
      'options.optimizer',
      'an AdamW of @piflow/core',
      String(options.optimizer),
    );
  }
  const random = options.random instanceof Random ? options.random : createRandom(options.random ?? 0);
  await registerGradients();
  ensureWasmTrainingKernels();
  const optimizer =
    options.optimizer ?? digitClassifierOptimizer(classifier, { steps: Math.max(1, steps), learningRate });
  const losses = new Float32Array(steps - startStep);
  const pixels = size * size;
  const started = performance.now();
  let done = startStep;
  try {
    for (let step = startStep; step < steps; step++) {
      if (options.signal?.aborted) break;
      const x = new Float32Array(batchSize * pixels).fill(-1);
      const y = new Int32Array(batchSize);
      for (let b = 0; b < batchSize; b++) {
        const i = random.integer(data.count);
        y[b] = data.labels[i]!;
        const dx = maxShift ? random.integer(2 * maxShift + 1) - maxShift : 0;
        const dy = maxShift ? random.integer(2 * maxShift + 1) - maxShift : 0;
        for (let r = 0; r < size; r++) {
          const sr = r - dy;
          if (sr < 0 || sr >= size) continue;
          for (let c = 0; c < size; c++) {
            const sc = c - dx;
            if (sc < 0 || sc >= size) continue;
            x[b * pixels + r * size + c] = data.images[i * pixels + sr * size + sc]!;
          }
        }
      }
      const images = tf.tensor4d(x, [batchSize, size, size, 1]);
      const targets = tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), numClasses));
      let value: number;
      try {
        ({ loss: value } = await optimizer.minimize(() =>
          tf.losses.softmaxCrossEntropy(targets, classifier.logits(images)),
        ));
      } finally {
        tf.dispose([images, targets]);
      }
      losses[step - startStep] = value;
      done = step + 1;
      await options.onStep?.({ step: done, loss: value });
    }
  } finally {
    if (!options.optimizer) optimizer.dispose();
  }
  return {
    steps: done,
    losses: losses.subarray(0, done - startStep),
    stepsPerSecond: (done - startStep) / ((performance.now() - started) / 1000),
  };
}
