import './style.css';
import { createRandom } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  type BackendChoice,
  backendOrderFromQuery,
  initBackend,
  threadsFromQuery,
  wasmThreads,
} from './backend';
import { MODELS_BASE_URL, TRAJECTORY_COUNT, VIEW } from './config';
import { type DemoModels, loadDemoModels, type StudentSteps, studentSteps } from './demo-models';
import { drawBackground, drawSamples, drawTrajectories, stepColor } from './draw';
import { studentLabel } from './families';
import {
  generateSamples,
  policyTrajectories,
  samplingSettings,
  type Trajectories,
  teacherTrajectories,
} from './generate';
import { fractionInSquares, meanEndpointGap } from './metrics';
import { createMnistView, type MnistRun } from './mnist-view';

/** What the page reports about its last run (read by the end-to-end test and handy in the console). */
export interface DemoRun {
  backend: string;
  steps: number;
  count: number;
  seed: number;
  milliseconds: number;
  /** The untimed first batch of a configuration (shader compilation included); 0 when already warm. */
  warmupMilliseconds: number;
  /** Computing both sets of trajectories. */
  trajectoryMilliseconds: number;
  samplesDrawn: number;
  inSquares: number;
  endpointGap: number;
  trajectoriesDrawn: number;
}

declare global {
  interface Window {
    piflowDemo?: { backend?: BackendChoice; runs: DemoRun[]; mnistRuns: MnistRun[]; error?: string };
  }
}

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from index.html`);
  return found as T;
};

const form = element<HTMLFormElement>('controls');
const button = element<HTMLButtonElement>('generate');
const note = element<HTMLParagraphElement>('note');
const samplesCanvas = element<HTMLCanvasElement>('samples');
const trajectoriesCanvas = element<HTMLCanvasElement>('trajectories');
const samplesContext = samplesCanvas.getContext('2d')!;
const trajectoriesContext = trajectoriesCanvas.getContext('2d')!;
const report: NonNullable<Window['piflowDemo']> = { runs: [], mnistRuns: [] };
window.piflowDemo = report;

function setState(state: 'loading' | 'ready' | 'generating' | 'done' | 'error', text: string = state) {
  document.body.dataset.state = state;
  element('status').textContent = text;
}

function showNote(text: string, kind: 'fallback' | 'error' = 'fallback') {
  note.textContent = text;
  note.classList.toggle('error', kind === 'error');
  note.hidden = false;
}

function selectedSteps(): StudentSteps {
  const value = Number(new FormData(form).get('steps'));
  return (studentSteps as readonly number[]).includes(value) ? (value as StudentSteps) : 4;
}

let models: DemoModels | undefined;
let backend = '';
let backendReady: () => void = () => {};
const ready = new Promise<void>((resolve) => {
  backendReady = resolve;
});
const warmed = new Set<string>();
const teacherCache = new Map<string, Trajectories>();

async function generate(): Promise<void> {
  if (!models) return;
  const steps = selectedSteps();
  const count = Number(element<HTMLSelectElement>('count').value);
  const seed = Math.max(0, Math.floor(Number(element<HTMLInputElement>('seed').value) || 0));
  const student = models.students.get(steps)!;
  const settings = samplingSettings(student.manifest, steps);
  button.disabled = true;
  setState('generating', `generating ${count} samples in ${steps} step${steps === 1 ? '' : 's'}…`);
  const noise = createRandom(seed).normalTensor([count, 2]);
  const pathNoise = tf.slice(noise, [0, 0], [Math.min(TRAJECTORY_COUNT, count), 2]);
  try {
    // The first batch of a configuration compiles shaders and allocates buffers: it is run once untimed.
    const key = `${backend}/${steps}/${count}`;
    let warmupMilliseconds = 0;
    if (!warmed.has(key)) {
      const warmupStarted = performance.now();
      await generateSamples(student.model, noise, settings);
      warmupMilliseconds = performance.now() - warmupStarted;
      warmed.add(key);
    }
    const started = performance.now();
    const values = await generateSamples(student.model, noise, settings);
    const milliseconds = performance.now() - started;
    const samplesDrawn = drawSamples(samplesContext, values, VIEW);
    const inSquares = fractionInSquares(values);

    const trajectoriesStarted = performance.now();
    const teacherKey = `${backend}/${seed}/${settings.shift}/${settings.substeps}`;
    let teacherPaths = teacherCache.get(teacherKey);
    if (!teacherPaths) {
      teacherPaths = await teacherTrajectories(models.teacher.model, pathNoise, settings);
      teacherCache.set(teacherKey, teacherPaths);
    }
    const policyPaths = await policyTrajectories(student.model, pathNoise, settings);
    const trajectoryMilliseconds = performance.now() - trajectoriesStarted;
    const trajectoriesDrawn = drawTrajectories(trajectoriesContext, teacherPaths, policyPaths, VIEW);
    const endpointGap = meanEndpointGap(policyPaths, teacherPaths);

    element('backend').textContent = backend;
    element('time').textContent =
      `${milliseconds.toFixed(1)} ms (${count} samples, ${steps} step${steps === 1 ? '' : 's'})`;
    element('samples-drawn').textContent = String(samplesDrawn);
    element('in-squares').textContent = `${(100 * inSquares).toFixed(1)} %`;
    element('gap').textContent = `${endpointGap.toFixed(3)} (mean distance, ${trajectoriesDrawn} paths)`;
    element('samples-caption').textContent = `${steps}-step student, seed ${seed}`;
    element('student-evaluations').textContent = String(steps);
    element('teacher-evaluations').textContent = String(teacherPaths.length - 1);
    element('legend').innerHTML = Array.from(
      { length: steps },
      (_, i) => `<span class="swatch" style="background:${stepColor(i)}"></span>step ${i + 1}`,
    ).join('');
    report.runs.push({
      backend,
      steps,
      count,
      seed,
      milliseconds,
      warmupMilliseconds,
      trajectoryMilliseconds,
      samplesDrawn,
      inSquares,
      endpointGap,
      trajectoriesDrawn,
    });
    document.body.dataset.runs = String(report.runs.length);
    setState('done', `done: ${samplesDrawn} samples drawn`);
  } finally {
    noise.dispose();
    pathNoise.dispose();
    button.disabled = false;
  }
}

/** `?steps=1&count=256&seed=3` preset the controls (shareable links; the fallback test uses a small batch). */
function applyQuery(search: string): void {
  const query = new URLSearchParams(search);
  const steps = query.get('steps');
  const radio = form.querySelector<HTMLInputElement>(`input[name="steps"][value="${Number(steps)}"]`);
  if (steps !== null && radio) radio.checked = true;
  const countSelect = element<HTMLSelectElement>('count');
  const count = query.get('count');
  if (count !== null && [...countSelect.options].some((o) => o.value === count)) countSelect.value = count;
  const seed = Number(query.get('seed'));
  if (query.get('seed') !== null && Number.isInteger(seed) && seed >= 0) {
    element<HTMLInputElement>('seed').value = String(seed);
  }
}

/** Loads the 2-D models and generates once, the first time the 2-D view is shown. */
async function load2d(): Promise<void> {
  await ready;
  setState('loading', 'loading models…');
  models = await loadDemoModels(MODELS_BASE_URL);
  const describe = (label: string, metadata: Record<string, unknown> | undefined, params: number) =>
    `${label}: ${params.toLocaleString('en')} parameters${
      typeof metadata?.trainingSteps === 'number' ? `, ${metadata.trainingSteps} training steps` : ''
    }${typeof metadata?.distillationSteps === 'number' ? `, ${metadata.distillationSteps} π-ID iterations` : ''}`;
  const count = (variables: readonly tf.Variable[]) => variables.reduce((a, v) => a + v.size, 0);
  element('model-info').textContent = [
    describe('Teacher (flow model)', models.teacher.manifest.metadata, count(models.teacher.model.variables)),
    ...[...models.students].map(([steps, s]) =>
      describe(`${steps}-step ${studentLabel(s.model)}`, s.manifest.metadata, count(s.model.variables)),
    ),
  ].join(' · ');
  setState('ready');
  button.disabled = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    generate().catch(fail);
  });
  await generate();
}

const mnistView = createMnistView({
  modelsUrl: MODELS_BASE_URL,
  backend: () => backend,
  ready,
  runs: report.mnistRuns,
  fail: reportError,
});

type ViewName = '2d' | 'mnist';
let activation2d: Promise<void> | undefined;
const activate: Record<ViewName, () => Promise<void>> = {
  '2d': () => {
    activation2d ??= load2d().catch(fail);
    return activation2d;
  },
  mnist: () => mnistView.activate(),
};

/** Shows one view (tabs; `?view=mnist` in the URL) and loads its models the first time. */
function showView(name: ViewName): Promise<void> {
  for (const view of ['2d', 'mnist'] as const) {
    element(`view-${view}`).hidden = view !== name;
    element(`tab-${view}`).setAttribute('aria-selected', String(view === name));
  }
  document.body.dataset.view = name;
  const url = new URL(window.location.href);
  if (name === 'mnist') url.searchParams.set('view', 'mnist');
  else url.searchParams.delete('view');
  window.history.replaceState(null, '', url);
  return activate[name]();
}

async function start(): Promise<void> {
  const initialView: ViewName =
    new URLSearchParams(window.location.search).get('view') === 'mnist' ? 'mnist' : '2d';
  if (initialView === 'mnist') mnistView.applyQuery(window.location.search);
  else applyQuery(window.location.search);
  for (const tab of document.querySelectorAll<HTMLButtonElement>('#tabs [role="tab"]')) {
    tab.addEventListener('click', () => {
      showView(tab.dataset.view === 'mnist' ? 'mnist' : '2d');
    });
  }
  drawBackground(samplesContext, VIEW);
  drawBackground(trajectoriesContext, VIEW);
  const { order, requested } = backendOrderFromQuery(window.location.search);
  setState('loading', 'setting up the backend…');
  // Unless a backend was asked for, WebGPU is measured against wasm before it is trusted (software adapters).
  const threads = wasmThreads(threadsFromQuery(window.location.search), {
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    hardwareConcurrency: navigator.hardwareConcurrency ?? 1,
  });
  const choice = await initBackend(order, { probe: !requested, threads });
  report.backend = choice;
  backend = choice.backend;
  element('backend').textContent =
    choice.threads !== undefined && choice.threads > 1 ? `${backend} (${choice.threads} threads)` : backend;
  const webgpuSkip = choice.skipped.find((s) => s.backend === 'webgpu');
  const probe = choice.probe?.map((p) => `${p.backend} ${p.milliseconds.toFixed(0)} ms`).join(', ');
  if (requested && requested !== 'webgpu' && choice.backend === requested) {
    showNote(`Running on ${requested} because the page was opened with ?backend=${requested}.`);
  } else if (choice.probe && choice.backend === 'wasm') {
    showNote(
      `WebGPU works here but is slower than WebAssembly on this machine (a small probe: ${probe}; likely a ` +
        'software adapter), so the demo runs on WebAssembly. Open the page with ?backend=webgpu to use WebGPU anyway.',
    );
  } else if (choice.backend !== 'webgpu') {
    showNote(
      `WebGPU is not available here (${webgpuSkip?.reason ?? 'not tried'}), so the demo runs on ` +
        `${choice.backend === 'webgl' ? 'WebGL' : 'WebAssembly'} instead: the same samples, more slowly.` +
        (choice.skipped.length > 1
          ? ` Also skipped: ${choice.skipped
              .filter((s) => s.backend !== 'webgpu')
              .map((s) => `${s.backend} (${s.reason})`)
              .join(', ')}.`
          : ''),
    );
  }
  backendReady();
  await showView(initialView);
}

/** Shows an error in the note and the report; `data-state="error"` on the body tells tests to stop waiting. */
function reportError(error: unknown): void {
  const message = (error as Error)?.message ?? String(error);
  report.error = message;
  showNote(`Error: ${message}`, 'error');
  document.body.dataset.state = 'error';
}

function fail(error: unknown): void {
  reportError(error);
  setState('error', 'error');
  button.disabled = !models;
}

start().catch(fail);
