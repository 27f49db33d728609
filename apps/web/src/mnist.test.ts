import '@tensorflow/tfjs-backend-cpu';
import { createRandom, PiflowError, sample } from '@piflow/core';
import { maxAbsDifference } from '@piflow/core/testing';
import { FASHION_MNIST_CLASSES, loadMnist } from '@piflow/datasets';
import {
  createMLPBackbone,
  createStudent,
  createUNetBackbone,
  describeModel,
  encodeWeights,
  type ModelManifest,
  type StoredModel,
} from '@piflow/models';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samplingSettings } from './generate';
import { generateImages, imageDatasetView, imageDatasetViews, loadMnistStudent } from './mnist';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// A tiny class-conditional U-Net GM student on 8 × 8 grey images (the shipped one is 28 × 28, K = 8).
const student = createStudent(
  createUNetBackbone({ channels: [4, 8], inChannels: 1, timeEmbedDim: 8, embeddingDim: 8, numClasses: 10 }),
  { family: gm, head: { numComponents: 2, logstdHiddenDim: 8, initialLogstd: Math.log(0.3) } },
);
afterAll(() => student.dispose());

describe('generateImages', () => {
  it('is sample() with the GM family and the labels as condition, and leaks no tensor', async () => {
    const settings = samplingSettings({ sampling: { numInferenceSteps: 2, shift: 2 } }, 2, 16);
    const noise = createRandom(1).normalTensor([4, 8, 8, 1]);
    const labels = Int32Array.of(3, 7, 3, 7);
    const labelTensor = tf.tensor1d(labels, 'int32');
    const expected = sample(student, gm, noise, { ...settings, condition: { labels: labelTensor } });
    const before = tf.memory().numTensors;
    const images = await generateImages(student, noise, labels, settings);
    expect(tf.memory().numTensors).toBe(before);
    expect(images).toHaveLength(4 * 64);
    expect(maxAbsDifference(images, await expected.data())).toBeLessThan(1e-5);
    // The labels reach the network: other labels, other images from the same noise.
    const others = await generateImages(student, noise, Int32Array.of(0, 1, 2, 5), settings);
    expect(maxAbsDifference(images, others)).toBeGreaterThan(1e-4);
    tf.dispose([noise, labelTensor, expected]);
  });

  it('validates the student, the noise and the labels', async () => {
    const settings = samplingSettings({}, 1, 4);
    const noise = tf.zeros([2, 8, 8, 1]);
    await expect(generateImages({} as never, noise, Int32Array.of(1, 2), settings)).rejects.toThrow(
      /student/,
    );
    await expect(generateImages(student, tf.zeros([2, 64]), Int32Array.of(1, 2), settings)).rejects.toThrow(
      /noise/,
    );
    await expect(generateImages(student, noise, Int32Array.of(1), settings)).rejects.toThrow(
      /labels.*one label per image \(2\)/,
    );
    await expect(generateImages(student, noise, [1, 2] as never, settings)).rejects.toThrow(/labels/);
    noise.dispose();
  });
});

/** A fetch that serves stored models from memory, as the Vite plugin serves model.json and weights.bin. */
function serve(files: Record<string, ModelManifest | Uint8Array>): typeof fetch {
  return (async (url: string) => {
    const body = files[url];
    if (!body) return new Response('not found', { status: 404, statusText: 'Not Found' });
    return new Response(
      body instanceof Uint8Array ? new Blob([body as Uint8Array<ArrayBuffer>]) : JSON.stringify(body),
    );
  }) as typeof fetch;
}

function stored(model: StoredModel, sampleShape: number[], metadata?: Record<string, unknown>) {
  return {
    manifest: describeModel(model, { sampleShape, sampling: { numInferenceSteps: 4 }, metadata }),
    weights: encodeWeights(model.variables),
  };
}

describe('loadMnistStudent', () => {
  it('loads the class-conditional GM student from <base>mnist/gm-4/ with its weights', async () => {
    const { manifest, weights } = stored(student, [8, 8, 1]);
    const loaded = await loadMnistStudent(
      'https://example.test/models',
      serve({
        'https://example.test/models/mnist/gm-4/model.json': manifest,
        'https://example.test/models/mnist/gm-4/weights.bin': weights,
      }),
    );
    expect(loaded.imageShape).toEqual([8, 8, 1]);
    expect(loaded.numClasses).toBe(10);
    expect(loaded.model.family).toBe('gm');
    expect(loaded.manifest.sampling?.numInferenceSteps).toBe(4);
    expect(encodeWeights(loaded.model.variables)).toEqual(weights);
    loaded.model.dispose();
  });

  it('loads and samples a student of any family the build includes (DX here)', async () => {
    const dxStudent = createStudent(
      createUNetBackbone({
        channels: [4, 8],
        inChannels: 1,
        timeEmbedDim: 8,
        embeddingDim: 8,
        numClasses: 10,
      }),
      { family: dx, head: { numPoints: 3 }, shift: 2, segmentSize: 0.5 },
    );
    const { manifest, weights } = stored(dxStudent, [8, 8, 1]);
    const loaded = await loadMnistStudent(
      'https://example.test/models/',
      serve({
        'https://example.test/models/mnist/dx-4/model.json': manifest,
        'https://example.test/models/mnist/dx-4/weights.bin': weights,
      }),
      { studentPath: 'mnist/dx-4/' },
    );
    expect(loaded.model.family).toBe('dx');
    expect(loaded.model.policyOptions).toEqual({ shift: 2, segmentSize: 0.5, mode: 'grid' });
    const settings = samplingSettings(loaded.manifest, 2, 8);
    const noise = createRandom(4).normalTensor([2, 8, 8, 1]);
    const labels = Int32Array.of(1, 2);
    const labelTensor = tf.tensor1d(labels, 'int32');
    const expected = sample(dxStudent, dx, noise, {
      ...settings,
      condition: { labels: labelTensor },
      policyOptions: dxStudent.policyOptions,
    });
    const images = await generateImages(loaded.model, noise, labels, settings);
    expect(maxAbsDifference(images, await expected.data())).toBe(0);
    tf.dispose([noise, labelTensor, expected]);
    loaded.model.dispose();
    dxStudent.dispose();
  });

  it('refuses models that are not class-conditional image GM students, and says which URL failed', async () => {
    const base = 'https://example.test/m/';
    const files = (model: StoredModel, shape: number[]) => {
      const { manifest, weights } = stored(model, shape);
      return serve({
        [`${base}mnist/gm-4/model.json`]: manifest,
        [`${base}mnist/gm-4/weights.bin`]: weights,
      });
    };
    const flat = createStudent(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }), {
      family: gm,
      head: { numComponents: 2 },
    });
    const unconditional = createStudent(createUNetBackbone({ channels: [4], inChannels: 1 }), {
      family: gm,
      head: { numComponents: 2 },
    });
    const before = tf.memory().numTensors;
    await expect(loadMnistStudent(base, files(flat, [2]))).rejects.toThrow(/mnist\/gm-4\/ makes samples/);
    await expect(loadMnistStudent(base, files(unconditional, [8, 8, 1]))).rejects.toThrow(
      /not class-conditional/,
    );
    await expect(loadMnistStudent(base, serve({}))).rejects.toThrow(PiflowError);
    await expect(loadMnistStudent('', serve({}))).rejects.toThrow(/baseUrl/);
    // Refused models are disposed.
    expect(tf.memory().numTensors).toBe(before);
    flat.dispose();
    unconditional.dispose();
  });
});

describe('the image data sets of the view', () => {
  it("name each class as the data set packages do, and point at each data set's student", () => {
    expect(imageDatasetViews.map((d) => d.name)).toEqual(['mnist', 'fashion-mnist']);
    expect(imageDatasetView('fashion-mnist').classNames).toEqual([...FASHION_MNIST_CLASSES]);
    expect(imageDatasetView('fashion-mnist').studentPath).toBe('fashion-mnist/gm-4/');
    expect(imageDatasetView('mnist').classNames).toEqual([...loadMnist().classNames]);
    expect(() => imageDatasetView('cifar')).toThrow(/dataset.*'mnist', 'fashion-mnist'.*"cifar"/);
  });

  it("loads the chosen data set's student and refuses one whose file records another data set", async () => {
    const base = 'https://example.test/models/';
    const { manifest, weights } = stored(student, [8, 8, 1], { dataset: 'fashion-mnist' });
    const files = serve({
      [`${base}fashion-mnist/gm-4/model.json`]: manifest,
      [`${base}fashion-mnist/gm-4/weights.bin`]: weights,
      [`${base}mnist/gm-4/model.json`]: manifest,
      [`${base}mnist/gm-4/weights.bin`]: weights,
    });
    const loaded = await loadMnistStudent(base, files, {
      studentPath: imageDatasetView('fashion-mnist').studentPath,
      dataset: 'fashion-mnist',
    });
    expect(loaded.manifest.metadata?.dataset).toBe('fashion-mnist');
    loaded.model.dispose();
    const before = tf.memory().numTensors;
    await expect(loadMnistStudent(base, files, { dataset: 'mnist' })).rejects.toThrow(
      /mnist\/gm-4\/ was trained on "fashion-mnist", not "mnist"/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
