import { describeValue, InvalidArgumentError } from '@piflow/core';
import { encodeWeights } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import {
  checkClassifier,
  createDigitClassifier,
  type DigitClassifier,
  type DigitClassifierConfig,
} from './digit-classifier';

/** What a stored classifier's JSON holds (its weights are one little-endian float32 buffer, in order). */
export interface DigitClassifierManifest {
  format: 'piflow-digit-classifier';
  version: 1;
  config: DigitClassifierConfig;
  variables: { name: string; shape: number[] }[];
  metadata?: Record<string, unknown>;
}

/** The classifier as a manifest and a weight buffer (write them with your own I/O, e.g. files). */
export function serializeDigitClassifier(
  classifier: DigitClassifier,
  metadata?: Record<string, unknown>,
): { manifest: DigitClassifierManifest; weights: Uint8Array } {
  checkClassifier(classifier);
  return {
    manifest: {
      format: 'piflow-digit-classifier',
      version: 1,
      config: { ...classifier.config, channels: [...classifier.config.channels] },
      variables: classifier.variables.map((v, i) => ({
        name: classifier.variableNames[i]!,
        shape: [...v.shape],
      })),
      ...(metadata ? { metadata } : {}),
    },
    weights: encodeWeights(classifier.variables),
  };
}

/** Rebuilds a classifier from {@link serializeDigitClassifier}'s output, checking names, shapes and sizes. */
export function deserializeDigitClassifier(
  manifest: DigitClassifierManifest,
  weights: Uint8Array | ArrayBuffer,
): DigitClassifier {
  if (typeof manifest !== 'object' || manifest === null || manifest.format !== 'piflow-digit-classifier') {
    throw new InvalidArgumentError(
      'manifest',
      "a digit-classifier manifest (format 'piflow-digit-classifier')",
      describeValue(manifest),
    );
  }
  if (manifest.version !== 1) {
    throw new InvalidArgumentError('manifest.version', '1', describeValue(manifest.version));
  }
  const bytes = weights instanceof Uint8Array ? weights : new Uint8Array(weights);
  const classifier = createDigitClassifier(manifest.config);
  const expected = classifier.variables.reduce((a, v) => a + v.size, 0);
  const mismatch = classifier.variables.findIndex(
    (v, i) =>
      manifest.variables[i]?.name !== classifier.variableNames[i] ||
      manifest.variables[i]?.shape.join(',') !== v.shape.join(','),
  );
  if (
    mismatch >= 0 ||
    manifest.variables.length !== classifier.variables.length ||
    bytes.byteLength !== expected * 4
  ) {
    classifier.dispose();
    throw new InvalidArgumentError(
      'weights',
      `${expected} float32 values for ${classifier.variables.length} variables matching the manifest`,
      `${bytes.byteLength} bytes${mismatch >= 0 ? `, variable ${mismatch} (${manifest.variables[mismatch]?.name}) differs` : ''}`,
    );
  }
  const flat = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  let offset = 0;
  tf.tidy(() => {
    for (const v of classifier.variables) {
      v.assign(tf.tensor(flat.subarray(offset, offset + v.size), v.shape, 'float32'));
      offset += v.size;
    }
  });
  return classifier;
}
