import { assertTensor, InvalidArgumentError, PiflowError, type PolicyRegistry, sample } from '@piflow/core';
import {
  isFlowModel,
  loadModelFromUrl,
  type ModelManifest,
  type PolicyStudent,
  type UNetBackboneOptions,
} from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { familyOf, webFamilies } from './families';
import type { SamplingSettings } from './generate';

/** Step counts the MNIST view offers (the shipped student was trained for 4; fewer steps still work). */
export const mnistSteps = [1, 2, 4] as const;
export type MnistSteps = (typeof mnistSteps)[number];

/** The folder of the class-conditional MNIST GM student under the models URL. */
export const MNIST_STUDENT_PATH = 'mnist/gm-4/';

/** An image data set the view offers: its shipped student and how its classes are shown. */
export interface ImageDatasetView {
  /** The data set's name, as the model files record it (`metadata.dataset`). */
  name: string;
  /** Shown in the data set menu and the captions. */
  title: string;
  /** What one image is called in the status line ("digits", "images"). */
  noun: string;
  /** The student's folder under the models URL. */
  studentPath: string;
  /** Label of each class, in label order. */
  classNames: readonly string[];
}

/** The data sets of the view, in menu order. */
export const imageDatasetViews: readonly ImageDatasetView[] = [
  {
    name: 'mnist',
    title: 'MNIST digits',
    noun: 'digits',
    studentPath: MNIST_STUDENT_PATH,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  },
  {
    name: 'fashion-mnist',
    title: 'Fashion-MNIST',
    noun: 'images',
    studentPath: 'fashion-mnist/gm-4/',
    // The labels of Fashion-MNIST's README (equal to FASHION_MNIST_CLASSES of @piflow/datasets, which the
    // browser bundle does not import: that package reads files with node:fs).
    classNames: [
      'T-shirt/top',
      'Trouser',
      'Pullover',
      'Dress',
      'Coat',
      'Sandal',
      'Shirt',
      'Sneaker',
      'Bag',
      'Ankle boot',
    ],
  },
];

/** The view's entry for a data set name (throws naming the offered ones). */
export function imageDatasetView(name: string): ImageDatasetView {
  const found = imageDatasetViews.find((d) => d.name === name);
  if (!found) {
    throw new InvalidArgumentError(
      'dataset',
      `one of ${imageDatasetViews.map((d) => `'${d.name}'`).join(', ')}`,
      JSON.stringify(name),
    );
  }
  return found;
}

export interface MnistStudent {
  model: PolicyStudent;
  manifest: ModelManifest;
  /** One image without the batch axis, [H, W, C]. */
  imageShape: [number, number, number];
  numClasses: number;
}

/**
 * Loads the class-conditional MNIST student from `<baseUrl><studentPath>` (`model.json` + weights) onto
 * the active tfjs backend, and checks that it is one: a student (of any family in `families`) of images with
 * class labels — and, with `dataset`, one trained on that data set (as its file records).
 */
export async function loadMnistStudent(
  baseUrl: string,
  fetchImpl: typeof fetch = fetch,
  options: { studentPath?: string; families?: PolicyRegistry; dataset?: string } = {},
): Promise<MnistStudent> {
  if (typeof baseUrl !== 'string' || baseUrl.length === 0) {
    throw new InvalidArgumentError('baseUrl', 'a URL string such as "./models/"', String(baseUrl));
  }
  const url = `${baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`}${options.studentPath ?? MNIST_STUDENT_PATH}`;
  const { model, manifest } = await loadModelFromUrl(url, {
    fetch: fetchImpl,
    families: options.families ?? webFamilies,
  });
  const numClasses = (manifest.backbone?.config as UNetBackboneOptions | undefined)?.numClasses;
  const shape = manifest.sampleShape;
  const recorded = manifest.metadata?.dataset;
  const problem = isFlowModel(model)
    ? `holds a ${manifest.kind}, not a student`
    : !Array.isArray(shape) || shape.length !== 3
      ? `makes samples of shape [${shape}], not images [H, W, C]`
      : typeof numClasses !== 'number'
        ? 'is not class-conditional (its backbone has no numClasses)'
        : options.dataset !== undefined && recorded !== undefined && recorded !== options.dataset
          ? `was trained on ${JSON.stringify(recorded)}, not ${JSON.stringify(options.dataset)}`
          : undefined;
  if (problem) {
    model.dispose();
    throw new PiflowError(`${url} ${problem}.`);
  }
  return {
    model: model as PolicyStudent,
    manifest,
    imageShape: shape as [number, number, number],
    numClasses: numClasses as number,
  };
}

/**
 * Class-conditional few-step generation: `sample()` from @piflow/core with the student's family and
 * `condition: { labels }` (int32, one label per image). Returns the images [B, H, W, C] flattened; `noise` is
 * not disposed.
 */
export async function generateImages(
  student: PolicyStudent,
  noise: tf.Tensor,
  labels: Int32Array,
  settings: SamplingSettings,
  families: PolicyRegistry = webFamilies,
): Promise<Float32Array> {
  if (typeof student?.family !== 'string' || typeof student.predict !== 'function') {
    throw new InvalidArgumentError('student', 'a student (loadMnistStudent)', typeof student);
  }
  const family = familyOf(student, families);
  assertTensor('noise', noise, { rank: 4 });
  if (!(labels instanceof Int32Array) || labels.length !== noise.shape[0]) {
    throw new InvalidArgumentError(
      'labels',
      `an Int32Array with one label per image (${noise.shape[0]})`,
      labels instanceof Int32Array ? `${labels.length} labels` : typeof labels,
    );
  }
  const condition = { labels: tf.tensor1d(labels, 'int32') };
  let x: tf.Tensor | undefined;
  try {
    x = sample(student, family, noise, {
      ...settings,
      condition,
      policyOptions: { ...student.policyOptions },
    });
    return (await x.data()) as Float32Array;
  } finally {
    condition.labels.dispose();
    x?.dispose();
  }
}
