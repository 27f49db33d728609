import { createRandom } from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
import { cycleLabels, type GridLayout, gridLayout, renderDigitGrid } from './digit-grid';
import { studentLabel } from './families';
import { samplingSettings } from './generate';
import {
  generateImages,
  type ImageDatasetView,
  imageDatasetView,
  imageDatasetViews,
  loadMnistStudent,
  type MnistStudent,
  mnistSteps,
} from './mnist';

/** What the MNIST view reports about a run (read by the end-to-end test). */
export interface MnistRun {
  /** The data set whose student made the images ('mnist', 'fashion-mnist'). */
  dataset: string;
  backend: string;
  steps: number;
  count: number;
  seed: number;
  /** The classes chosen (empty: all ten). */
  digits: number[];
  /** The label of each image, in grid order. */
  labels: number[];
  milliseconds: number;
  /** The untimed first batch of a configuration (shader compilation included); 0 when already warm. */
  warmupMilliseconds: number;
  /** Images drawn whole (every pixel finite). */
  digitsDrawn: number;
  /** Where the cells are on the canvas. */
  layout: GridLayout;
}

export interface MnistViewOptions {
  modelsUrl: string;
  /** The active tfjs backend's name, once set up. */
  backend: () => string;
  /** Waits for the backend to be set up. */
  ready: Promise<unknown>;
  runs: MnistRun[];
  /** Reports an error on the page. */
  fail: (error: unknown) => void;
}

const COLUMNS = 10;
const SCALE = 2;
const GAP = 4;

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from index.html`);
  return found as T;
};

/**
 * The image view: class-conditional generation with the shipped GM student of each image data set (MNIST
 * digits, Fashion-MNIST), drawn as a grid.
 */
export function createMnistView(options: MnistViewOptions) {
  const form = element<HTMLFormElement>('mnist-controls');
  const datasetSelect = element<HTMLSelectElement>('mnist-data');
  const button = element<HTMLButtonElement>('mnist-generate');
  const allButton = element<HTMLButtonElement>('all-digits');
  const canvas = element<HTMLCanvasElement>('digits');
  const context = canvas.getContext('2d')!;
  const countSelect = element<HTMLSelectElement>('mnist-count');
  const seedInput = element<HTMLInputElement>('mnist-seed');
  const digitBoxes = [...form.querySelectorAll<HTMLInputElement>('input[name="digit"]')];
  const warmed = new Set<string>();
  /** Students loaded so far, by data set name (each loaded the first time its data set is chosen). */
  const students = new Map<string, Promise<MnistStudent>>();
  let dataset: ImageDatasetView = imageDatasetViews[0]!;
  let student: MnistStudent | undefined;
  let activation: Promise<void> | undefined;

  const setState = (state: 'loading' | 'ready' | 'generating' | 'done' | 'error', text: string = state) => {
    document.body.dataset.mnistState = state;
    element('mnist-status').textContent = text;
  };

  const chosenDigits = () => digitBoxes.filter((b) => b.checked).map((b) => Number(b.value));
  const syncAllButton = () => allButton.setAttribute('aria-pressed', String(chosenDigits().length === 0));
  allButton.addEventListener('click', () => {
    for (const box of digitBoxes) box.checked = false;
    syncAllButton();
  });
  for (const box of digitBoxes) box.addEventListener('change', syncAllButton);

  const selectedSteps = (): number => {
    const value = Number(new FormData(form).get('mnist-steps'));
    return (mnistSteps as readonly number[]).includes(value) ? value : 4;
  };

  /** Names the class toggles after the data set's classes. */
  const labelClasses = () => {
    element('class-legend').textContent = dataset.name === 'mnist' ? 'Digits' : 'Classes';
    for (const box of digitBoxes) {
      const name = dataset.classNames[Number(box.value)] ?? box.value;
      box.nextElementSibling!.textContent = name;
      box.parentElement!.title = name;
    }
  };

  async function generate(): Promise<void> {
    if (!student) return;
    const { model, manifest, imageShape, numClasses } = student;
    const steps = selectedSteps();
    const count = Number(countSelect.value);
    const seed = Math.max(0, Math.floor(Number(seedInput.value) || 0));
    const digits = chosenDigits();
    const labels = cycleLabels(digits, count, numClasses);
    const settings = samplingSettings(manifest, steps);
    const backend = options.backend();
    button.disabled = true;
    setState('generating', `generating ${count} ${dataset.noun} in ${steps} step${steps === 1 ? '' : 's'}…`);
    const noise: tf.Tensor = createRandom(seed).normalTensor([count, ...imageShape]);
    try {
      const key = `${dataset.name}/${backend}/${steps}/${count}`;
      let warmupMilliseconds = 0;
      if (!warmed.has(key)) {
        const warmupStarted = performance.now();
        await generateImages(model, noise, labels, settings);
        warmupMilliseconds = performance.now() - warmupStarted;
        warmed.add(key);
      }
      const started = performance.now();
      const images = await generateImages(model, noise, labels, settings);
      const milliseconds = performance.now() - started;

      const [H, W, C] = imageShape;
      const layout = gridLayout(count, {
        imageHeight: H,
        imageWidth: W,
        columns: COLUMNS,
        scale: SCALE,
        gap: GAP,
      });
      const { pixels, drawn } = renderDigitGrid(images, layout, C);
      canvas.width = layout.width;
      canvas.height = layout.height;
      context.putImageData(new ImageData(pixels, layout.width, layout.height), 0, 0);

      const which =
        digits.length === 0
          ? `${dataset.title}, all classes`
          : `${dataset.title}: ${digits.map((d) => dataset.classNames[d] ?? String(d)).join(', ')}`;
      element('mnist-backend').textContent = backend;
      element('mnist-time').textContent =
        `${milliseconds.toFixed(1)} ms (${count} images, ${steps} step${steps === 1 ? '' : 's'})`;
      element('digits-drawn').textContent = String(drawn);
      element('digits-caption').textContent = `${which} · ${steps}-step sampling · seed ${seed}`;
      options.runs.push({
        dataset: dataset.name,
        backend,
        steps,
        count,
        seed,
        digits,
        labels: [...labels],
        milliseconds,
        warmupMilliseconds,
        digitsDrawn: drawn,
        layout,
      });
      document.body.dataset.mnistRuns = String(options.runs.length);
      setState('done', `done: ${drawn} ${dataset.noun} drawn`);
    } finally {
      noise.dispose();
      button.disabled = false;
    }
  }

  const fail = (error: unknown) => {
    setState('error');
    button.disabled = !student;
    options.fail(error);
  };

  /** Switches to the chosen data set's student (loading it the first time) and shows what it is. */
  async function useDataset(name: string): Promise<void> {
    dataset = imageDatasetView(name);
    labelClasses();
    button.disabled = true;
    student = undefined;
    setState('loading', `loading the ${dataset.title} student…`);
    let loading = students.get(dataset.name);
    if (!loading) {
      loading = loadMnistStudent(options.modelsUrl, fetch, {
        studentPath: dataset.studentPath,
        dataset: dataset.name,
      });
      // A failed load is not cached: choosing the data set again retries.
      loading.catch(() => students.delete(name));
      students.set(dataset.name, loading);
    }
    student = await loading;
    const { model, manifest } = student;
    const metadata = manifest.metadata ?? {};
    const parameters = model.variables.reduce((a, v) => a + v.size, 0);
    element('mnist-model-info').textContent =
      `${dataset.title} ${studentLabel(model)} (U-Net, class-conditional): ` +
      `${parameters.toLocaleString('en')} parameters` +
      (typeof metadata.distillationSteps === 'number'
        ? `, ${metadata.distillationSteps} π-ID iterations`
        : '') +
      (typeof manifest.sampling?.numInferenceSteps === 'number'
        ? `, trained for ${manifest.sampling.numInferenceSteps} steps`
        : '');
    setState('ready');
    button.disabled = false;
  }

  async function load(): Promise<void> {
    setState('loading', 'waiting for the backend…');
    await options.ready;
    element('mnist-backend').textContent = options.backend();
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      generate().catch(fail);
    });
    datasetSelect.addEventListener('change', () => {
      useDataset(datasetSelect.value).then(generate).catch(fail);
    });
    await useDataset(datasetSelect.value);
    await generate();
  }

  return {
    /** Loads the student and generates once, the first time the view is shown. */
    activate(): Promise<void> {
      activation ??= load().catch(fail);
      return activation;
    },
    /** `?data=fashion-mnist&digits=3,7&steps=1&count=20&seed=2` preset the controls. */
    applyQuery(search: string): void {
      const query = new URLSearchParams(search);
      const data = query.get('data');
      if (data !== null && imageDatasetViews.some((d) => d.name === data)) datasetSelect.value = data;
      const digits = new Set((query.get('digits') ?? '').split(',').filter((d) => d !== ''));
      for (const box of digitBoxes) box.checked = digits.has(box.value);
      syncAllButton();
      const steps = query.get('steps');
      const radio = form.querySelector<HTMLInputElement>(
        `input[name="mnist-steps"][value="${Number(steps)}"]`,
      );
      if (steps !== null && radio) radio.checked = true;
      const count = query.get('count');
      if (count !== null && [...countSelect.options].some((o) => o.value === count))
        countSelect.value = count;
      const seed = Number(query.get('seed'));
      if (query.get('seed') !== null && Number.isInteger(seed) && seed >= 0) seedInput.value = String(seed);
    },
  };
}
