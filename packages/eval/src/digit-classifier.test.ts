import { createRandom, InvalidArgumentError } from '@piflow/core';
import { testBackends, useBackend } from '@piflow/core/testing';
import { loadMnist } from '@piflow/datasets';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  classifierScore,
  classifyDigits,
  classifyDigitsAsync,
  createDigitClassifier,
  deserializeDigitClassifier,
  digitAccuracy,
  digitAccuracyAsync,
  digitFeatures,
  digitFeaturesAsync,
  digitMetrics,
  digitMetricsAsync,
  frechetDistance,
  kernelInceptionDistance,
  precisionRecall,
  serializeDigitClassifier,
  trainDigitClassifier,
} from './index';

/** Two easy classes on 8×8 images: a bright horizontal bar (0) or a vertical bar (1), at random positions. */
function bars(count: number, seed: number) {
  const r = createRandom(seed);
  const images = new Float32Array(count * 64).fill(-1);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % 2;
    labels[i] = label;
    const at = 1 + r.integer(6);
    for (let k = 0; k < 8; k++) {
      const [y, x] = label === 0 ? [at, k] : [k, at];
      images[i * 64 + y * 8 + x] = 1;
    }
    for (let p = 0; p < 64; p++) images[i * 64 + p]! += 0.2 * r.normal();
  }
  return { images, labels, count };
}

const small = { channels: [4, 8, 8] as [number, number, number], featureDim: 8, numClasses: 2, imageSize: 8 };

for (const backend of testBackends()) {
  describe(`digit classifier on ${backend}`, () => {
    it('learns two classes, and training, features and metrics leave no tensors behind', async () => {
      await useBackend(backend);
      const classifier = createDigitClassifier({ ...small, seed: 3 });
      const before = tf.memory().numTensors;
      const train = bars(200, 1);
      const test = bars(100, 2);
      const result = await trainDigitClassifier(classifier, train, {
        steps: 60,
        batchSize: 16,
        learningRate: 1e-2,
        maxShift: 1,
        random: 5,
      });
      expect(result.steps).toBe(60);
      expect(result.losses[59]).toBeLessThan(result.losses[0]! / 3);
      expect(digitAccuracy(classifier, test)).toBeGreaterThan(0.95);
      const metrics = digitMetrics(classifier, test, digitFeatures(classifier, train.images));
      expect(metrics.accuracy).toBeGreaterThan(0.95);
      // The asynchronous variants (for backends without synchronous reads, e.g. WebGPU in Node) agree exactly.
      const referenceAsync = await digitFeaturesAsync(classifier, train.images);
      expect(Array.from(referenceAsync)).toEqual(Array.from(digitFeatures(classifier, train.images)));
      expect(await digitMetricsAsync(classifier, test, referenceAsync)).toEqual(metrics);
      expect(await digitAccuracyAsync(classifier, test)).toBe(digitAccuracy(classifier, test));
      expect(Array.from(await classifyDigitsAsync(classifier, test.images))).toEqual(
        Array.from(classifyDigits(classifier, test.images)),
      );
      expect(tf.memory().numTensors).toBe(before);
      classifier.dispose();
    });

    it('digitMetrics equals the Fréchet distance, accuracy and per-class pairwise distances computed by hand', async () => {
      await useBackend(backend);
      const classifier = createDigitClassifier({ ...small, seed: 4 });
      const samples = bars(24, 7);
      const reference = bars(40, 8);
      const referenceFeatures = digitFeatures(classifier, reference.images);
      const metrics = digitMetrics(classifier, samples, referenceFeatures);
      const features = digitFeatures(classifier, samples.images);
      const d = small.featureDim;
      expect(metrics.frechetDistance).toBeCloseTo(
        frechetDistance({ values: features, dimension: d }, { values: referenceFeatures, dimension: d }),
        6,
      );
      const predicted = classifyDigits(classifier, samples.images);
      const correct = predicted.filter((p, i) => p === samples.labels[i]).length;
      expect(metrics.accuracy).toBeCloseTo(correct / samples.count, 10);
      for (const k of [0, 1]) {
        const members = [...samples.labels.keys()].filter((i) => samples.labels[i] === k);
        let sum = 0;
        let pairs = 0;
        for (const a of members)
          for (const b of members)
            if (a < b) {
              let s = 0;
              for (let f = 0; f < d; f++) s += (features[a * d + f]! - features[b * d + f]!) ** 2;
              sum += Math.sqrt(s);
              pairs++;
            }
        expect(metrics.perClassDiversity[k]).toBeCloseTo(sum / pairs, 5);
      }
      expect(metrics.diversity).toBeCloseTo(
        (metrics.perClassDiversity[0]! + metrics.perClassDiversity[1]!) / 2,
        10,
      );
      // precision/recall (reference = real manifold), KID and the classifier score on the same features
      const sampleSet = { values: features, dimension: d };
      const referenceSet = { values: referenceFeatures, dimension: d };
      const pr = precisionRecall(referenceSet, sampleSet);
      expect([metrics.precision, metrics.recall]).toEqual([pr.precision, pr.recall]);
      expect(metrics.kid).toBeCloseTo(kernelInceptionDistance(referenceSet, sampleSet).kid, 10);
      const logits = tf.tidy(() =>
        classifier.logitsFromFeatures(tf.tensor2d(features, [samples.count, d])).dataSync(),
      );
      expect(metrics.classScore).toBeCloseTo(classifierScore(logits, 2), 6);
      classifier.dispose();
    });
  });
}

describe('digit classifier: storage and validation', () => {
  it('serialises and restores exactly; wrong weights are rejected naming the argument', async () => {
    await useBackend('cpu');
    const classifier = createDigitClassifier({ ...small, seed: 9 });
    const { manifest, weights } = serializeDigitClassifier(classifier, { note: 'test' });
    expect(manifest.format).toBe('piflow-digit-classifier');
    expect(manifest.metadata).toEqual({ note: 'test' });
    const restored = deserializeDigitClassifier(JSON.parse(JSON.stringify(manifest)), weights);
    const images = bars(6, 3).images;
    expect(Array.from(digitFeatures(restored, images))).toEqual(
      Array.from(digitFeatures(classifier, images)),
    );
    const before = tf.memory().numTensors;
    const error = (() => {
      try {
        deserializeDigitClassifier(manifest, weights.subarray(0, weights.length - 4));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).argument).toBe('weights');
    expect(tf.memory().numTensors).toBe(before);
    expect(() => deserializeDigitClassifier({ ...manifest, format: 'x' } as never, weights)).toThrow(
      /manifest/,
    );
    classifier.dispose();
    restored.dispose();
  });

  it('rejects bad options, images and labels with errors naming them', async () => {
    await useBackend('cpu');
    const argument = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidArgumentError);
        return (e as InvalidArgumentError).argument;
      }
      throw new Error('no error');
    };
    expect(argument(() => createDigitClassifier({ channels: [4, 8] as never }))).toBe('options.channels');
    expect(argument(() => createDigitClassifier({ imageSize: 30 }))).toBe('options.imageSize');
    const classifier = createDigitClassifier(small);
    expect(argument(() => digitFeatures(classifier, new Float32Array(65)))).toBe('images');
    const x = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
    expect(argument(() => classifier.features(x))).toBe('images');
    x.dispose();
    const data = bars(4, 1);
    data.labels[0] = 5;
    await expect(trainDigitClassifier(classifier, data, { steps: 1 })).rejects.toThrow(/data\.labels/);
    await expect(
      trainDigitClassifier(classifier, { ...bars(4, 1), count: 5 }, { steps: 1 }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(argument(() => digitMetrics(classifier, bars(4, 1), new Float32Array(7)))).toBe(
      'referenceFeatures',
    );
    classifier.dispose();
  });

  it('takes MNIST splits from @piflow/datasets as they are (28×28, 10 classes)', async () => {
    await useBackend('cpu');
    const mnist = loadMnist();
    const classifier = createDigitClassifier({ channels: [4, 4, 4], featureDim: 8 });
    const features = digitFeatures(classifier, mnist.heldOut.images.subarray(0, 5 * 784));
    expect(features.length).toBe(5 * 8);
    expect(features.every(Number.isFinite)).toBe(true);
    classifier.dispose();
  });
});
