import { describeValue, InvalidArgumentError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  checkClassifier,
  checkLabelled,
  type DigitClassifier,
  digitFeatures,
  digitFeaturesAsync,
  type LabelledImages,
} from './digit-classifier';
import { classifierScore, kernelInceptionDistance, precisionRecall } from './feature-metrics';
import { frechetDistance } from './frechet-distance';

export interface DigitMetrics {
  /** Fréchet distance between the samples' and the reference's penultimate features. */
  frechetDistance: number;
  /** Fraction of samples classified as the label they were generated for. */
  accuracy: number;
  /** Mean over classes of the mean pairwise feature distance within the class. */
  diversity: number;
  /** Diversity per class (NaN for a class with fewer than two samples). */
  perClassDiversity: number[];
  /** k-NN precision (k = 3) of the samples' features against the reference's (fidelity). */
  precision: number;
  /** k-NN recall (k = 3) of the reference's features against the samples' (coverage). */
  recall: number;
  /** Kernel Inception Distance of the features (unbiased MMD², cubic kernel). */
  kid: number;
  /** Inception-Score form of the classifier's predictions: exp(E KL(p(y|x) ‖ p(y))). */
  classScore: number;
}

/**
 * Image metrics of class-conditional samples: Fréchet distance of their features to `referenceFeatures`
 * (from {@link digitFeatures} of held-out real digits), class accuracy and per-class diversity.
 */
export function digitMetrics(
  classifier: DigitClassifier,
  samples: LabelledImages,
  referenceFeatures: Float32Array,
): DigitMetrics {
  checkMetricsArguments(classifier, samples, referenceFeatures);
  const features = digitFeatures(classifier, samples.images);
  // The logits come from the features already computed (one network pass per image).
  const logitsTensor = logitsOf(classifier, features, samples.count);
  const logits = logitsTensor.dataSync();
  logitsTensor.dispose();
  return metricsFrom(classifier, samples, features, logits, referenceFeatures);
}

/** {@link digitMetrics} reading the network's outputs asynchronously (every backend, WebGPU in Node included). */
export async function digitMetricsAsync(
  classifier: DigitClassifier,
  samples: LabelledImages,
  referenceFeatures: Float32Array,
): Promise<DigitMetrics> {
  checkMetricsArguments(classifier, samples, referenceFeatures);
  const features = await digitFeaturesAsync(classifier, samples.images);
  const logitsTensor = logitsOf(classifier, features, samples.count);
  const logits = await logitsTensor.data();
  logitsTensor.dispose();
  return metricsFrom(classifier, samples, features, logits, referenceFeatures);
}

function checkMetricsArguments(
  classifier: DigitClassifier,
  samples: LabelledImages,
  referenceFeatures: Float32Array,
): void {
  checkClassifier(classifier);
  checkLabelled('samples', samples, classifier.config.imageSize);
  const { featureDim } = classifier.config;
  if (!(referenceFeatures instanceof Float32Array) || referenceFeatures.length % featureDim !== 0) {
    throw new InvalidArgumentError(
      'referenceFeatures',
      `a Float32Array of ${featureDim}-wide rows (digitFeatures)`,
      describeValue(referenceFeatures),
    );
  }
}

function logitsOf(classifier: DigitClassifier, features: Float32Array, count: number): tf.Tensor {
  return tf.tidy(() =>
    classifier.logitsFromFeatures(tf.tensor2d(features, [count, classifier.config.featureDim])),
  );
}

function metricsFrom(
  classifier: DigitClassifier,
  samples: LabelledImages,
  features: Float32Array,
  logits: ArrayLike<number>,
  referenceFeatures: Float32Array,
): DigitMetrics {
  const { featureDim, numClasses } = classifier.config;
  let correct = 0;
  for (let i = 0; i < samples.count; i++) {
    let best = 0;
    for (let k = 1; k < numClasses; k++)
      if (logits[i * numClasses + k]! > logits[i * numClasses + best]!) best = k;
    if (best === samples.labels[i]) correct++;
  }
  const perClassDiversity: number[] = [];
  for (let k = 0; k < numClasses; k++) {
    const members: number[] = [];
    for (let i = 0; i < samples.count; i++) if (samples.labels[i] === k) members.push(i);
    if (members.length < 2) {
      perClassDiversity.push(Number.NaN);
      continue;
    }
    let sum = 0;
    let pairs = 0;
    for (let a = 0; a < members.length; a++) {
      for (let b = a + 1; b < members.length; b++) {
        let d2 = 0;
        for (let f = 0; f < featureDim; f++) {
          const diff = features[members[a]! * featureDim + f]! - features[members[b]! * featureDim + f]!;
          d2 += diff * diff;
        }
        sum += Math.sqrt(d2);
        pairs++;
      }
    }
    perClassDiversity.push(sum / pairs);
  }
  const present = perClassDiversity.filter((d) => !Number.isNaN(d));
  const sampleSet = { values: features, dimension: featureDim };
  const referenceSet = { values: referenceFeatures, dimension: featureDim };
  const { precision, recall } = precisionRecall(referenceSet, sampleSet);
  return {
    precision,
    recall,
    kid: kernelInceptionDistance(referenceSet, sampleSet).kid,
    classScore: classifierScore(logits, numClasses),
    frechetDistance: frechetDistance(sampleSet, referenceSet),
    accuracy: correct / samples.count,
    diversity: present.length ? present.reduce((a, b) => a + b, 0) / present.length : Number.NaN,
    perClassDiversity,
  };
}
