import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveBackend, setupWasm } from '@piflow/backend-node';
import {
  type AnalyticGMFlow,
  type Condition,
  type PolicyRegistry,
  type Random,
  registerGradients,
  type Teacher,
} from '@piflow/core';
import { checkerboard, type Dataset2D, imageDatasetNames, loadImageDataset, rings } from '@piflow/datasets';
import {
  type FlowModel,
  isFlowModel,
  loadModelDirectory,
  type ModelManifest,
  type StoredModel,
  upgradeManifest,
} from '@piflow/models';
import { createAnalyticGMTeacher, createRemoteTeacher } from '@piflow/teachers';
import * as tf from '@tensorflow/tfjs-core';
import { UsageError } from './errors';
import { familyRegistry, registryForModel } from './families';

/** The global options that choose the backend. */
export interface BackendOptions {
  /** 'auto', 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  backend: string;
  /** Threads of the wasm backend (default 1). */
  threads?: number;
}

/** Makes the requested backend active ('auto' = the best available) and says which one runs. */
export async function selectBackend(options: BackendOptions, log: (line: string) => void): Promise<string> {
  const { backend: name, threads = 1 } = options;
  if (threads > 1) {
    if (name !== 'wasm' && name !== 'auto') {
      throw new UsageError(
        `--threads ${threads} applies to the wasm backend, not --backend ${name}`,
        'drop --threads, or run with --backend wasm',
      );
    }
    await setupWasm({ threads });
  }
  // tfjs's cpu backend prints a multi-line "install tfjs-node" banner on first use; the CLI says which backend
  // runs and why the others were skipped, so create the cpu backend now and mark the banner as shown.
  await import('@tensorflow/tfjs-backend-cpu');
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu) cpu.firstUse = false;
  // 'auto': native TensorFlow (CUDA or CPU) when installed, else wasm, else cpu. WebGPU in Node (Dawn) only on
  // request: tfjs's WebGPU backend cannot read tensors synchronously in Node, which training and eval do.
  const request =
    name === 'auto'
      ? { prefer: ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'], fallback: false }
      : { prefer: name === 'tensorflow' ? ['tfjs-node-gpu', 'tfjs-node'] : name, fallback: false };
  const resolved = await resolveBackend(request).catch((error: Error) => {
    throw new UsageError(error.message, `choose another --backend (auto picks the best available)`);
  });
  log(
    `backend: ${resolved.backendName}${resolved.backendName === 'wasm' && threads > 1 ? ` (${threads} threads)` : ''}`,
  );
  return resolved.backendName;
}

/**
 * The shipped models folder (checkerboard/ and mnist/). Installed, it is the `models/` folder inside the
 * package (copied from the repository's models/ when the package is built); run from source in the repository,
 * it is the repository's models/ itself, the single source of those files. `PIFLOW_MODELS_DIR` overrides both.
 */
export function shippedModelsDir(): string {
  if (process.env.PIFLOW_MODELS_DIR) return path.resolve(process.env.PIFLOW_MODELS_DIR);
  // This module is src/context.ts from source and dist/main.js once built (the bundle): the package root is
  // one folder up either way.
  const here = path.dirname(fileURLToPath(import.meta.url));
  const packageRoot = path.dirname(here);
  const repositoryModels = path.resolve(packageRoot, '../../models');
  const candidates =
    path.basename(here) === 'src'
      ? [repositoryModels, path.join(packageRoot, 'models')]
      : [path.join(packageRoot, 'models'), repositoryModels];
  return candidates.find((dir) => existsSync(path.join(dir, 'checkerboard'))) ?? candidates[0]!;
}

/**
 * Registers tfjs's gradient functions before a command trains. `@tensorflow/tfjs` (a dependency of this
 * package) registers them when imported; importing it from here works however the packages were installed
 * (nested or hoisted), and `registerGradients` from @piflow/core then finds them registered.
 */
export async function prepareTraining(): Promise<void> {
  if (!tf.getGradient('Sum')) {
    try {
      await import('@tensorflow/tfjs');
    } catch {
      // registerGradients below reports what to install.
    }
  }
  await registerGradients();
}

export const datasets2D: Record<string, () => Dataset2D> = {
  checkerboard: () => checkerboard(),
  rings: () => rings(),
};

/** What a teacher spec resolves to. */
export interface ResolvedTeacher {
  label: string;
  teacher: Teacher;
  /** The trainable flow model behind it, when it is one (students start from its weights). */
  flowModel?: FlowModel;
  manifest?: ModelManifest;
  /** Clean data (with its conditioning, e.g. labels) for data-dependent distillation and evaluation, when known. */
  data?: (n: number, random: Random) => { x0: tf.Tensor; condition?: Condition };
  /** The exact mixture behind an `analytic-gm:` teacher. */
  mixture?: AnalyticGMFlow;
  /** Number of classes of a class-conditional teacher. */
  numClasses?: number;
  /** The guidance scale the teacher runs with. */
  guidanceScale: number;
  sampleShape: number[];
  shift: number;
  dispose(): void;
}

/** Names of the shipped teachers (models/<name>/teacher), usable as teacher and model specs. */
export const SHIPPED_TEACHERS: readonly string[] = ['checkerboard', 'mnist', 'fashion-mnist'];

/** Data of a built-in dataset by name (2-D sets, or MNIST / Fashion-MNIST with labels). */
export function datasetByName(
  name: string | undefined,
): ((n: number, random: Random) => { x0: tf.Tensor; condition?: Condition }) | undefined {
  if (name !== undefined && imageDatasetNames.includes(name)) {
    // Loaded on first use: sampling or serving an image model never reads the images.
    let images: ReturnType<typeof loadImageDataset> | undefined;
    return (n, random) => {
      images ??= loadImageDataset(name);
      const { x, labels } = images.batch(n, random, 'train');
      return { x0: x, condition: { labels } };
    };
  }
  const set = name ? datasets2D[name]?.() : undefined;
  return set ? (n, random) => ({ x0: set.sample(n, random) }) : undefined;
}

async function fromModelDirectory(
  dir: string,
  label: string,
  requested: { guidanceScale?: number; guidanceInterval?: readonly [number, number] } = {},
): Promise<ResolvedTeacher> {
  const requestedGuidance = requested.guidanceScale;
  if (!existsSync(path.join(dir, 'model.json'))) {
    throw new UsageError(
      `No model.json in ${dir}.`,
      'give a folder written by `piflow train-teacher` or `piflow distill`.',
    );
  }
  const { model, manifest } = await loadModelDirectory(dir);
  if (!isFlowModel(model)) {
    model.dispose();
    throw new UsageError(
      `${dir} holds a ${manifest.kind}, not a teacher (flow model).`,
      'pass a teacher folder or spec.',
    );
  }
  const shift = manifest.sampling?.shift ?? 1;
  const numClasses = model.backbone.numClasses;
  // Guidance: the one asked for, else the one recorded with the teacher (class-conditional teachers only).
  const guidanceScale =
    requestedGuidance ?? (numClasses !== undefined ? manifest.sampling?.guidanceScale : 1) ?? 1;
  if (guidanceScale !== 1 && numClasses === undefined) {
    model.dispose();
    throw new UsageError(
      `--guidance-scale ${guidanceScale} was given but ${dir} is not class-conditional.`,
      'drop --guidance-scale (or set it to 1).',
    );
  }
  if (requested.guidanceInterval && guidanceScale === 1) {
    model.dispose();
    throw new UsageError(
      `--guidance-interval was given but ${dir} is sampled without guidance (scale 1).`,
      'drop --guidance-interval, or set --guidance-scale above 1 for a class-conditional teacher.',
    );
  }
  const dataset = typeof manifest.metadata?.dataset === 'string' ? manifest.metadata.dataset : undefined;
  return {
    label,
    teacher: model.asTeacher({
      shift,
      guidanceScale,
      ...(requested.guidanceInterval ? { guidanceInterval: requested.guidanceInterval } : {}),
    }),
    flowModel: model,
    manifest,
    data: datasetByName(dataset),
    ...(numClasses !== undefined ? { numClasses } : {}),
    guidanceScale,
    sampleShape: manifest.sampleShape,
    shift,
    dispose: () => model.dispose(),
  };
}

/**
 * Teacher specs: `checkerboard` / `mnist` / `fashion-mnist` (the shipped 2-D and class-conditional image teachers), `model:<dir>` or a folder path (a flow model
 * written by train-teacher), `analytic-gm:<file.json>` ({ means, std, weights }).
 */
export async function resolveTeacher(
  spec: string,
  options: { guidanceScale?: number; guidanceInterval?: readonly [number, number] } = {},
): Promise<ResolvedTeacher> {
  if (SHIPPED_TEACHERS.includes(spec)) {
    return fromModelDirectory(path.join(shippedModelsDir(), spec, 'teacher'), `${spec} teacher`, options);
  }
  if (
    (spec.startsWith('analytic-gm:') || /^https?:\/\//i.test(spec)) &&
    ((options.guidanceScale !== undefined && options.guidanceScale !== 1) || options.guidanceInterval)
  ) {
    throw new UsageError(
      `--guidance-scale and --guidance-interval apply to class-conditional model teachers, not to ${spec}.`,
      'drop them (this teacher is used as it is).',
    );
  }
  if (spec.startsWith('analytic-gm:')) {
    const file = spec.slice('analytic-gm:'.length);
    const definition = JSON.parse(await readFile(file, 'utf8'));
    const teacher = createAnalyticGMTeacher(definition);
    return {
      label: `analytic GM (${file})`,
      teacher,
      data: (n, random) => ({ x0: teacher.flow.sample(n, random).x0 }),
      mixture: teacher.flow,
      sampleShape: [teacher.flow.dimension],
      guidanceScale: 1,
      shift: 1,
      dispose: () => teacher.dispose?.(),
    };
  }
  if (/^https?:\/\//i.test(spec)) {
    // A teacher server (`piflow serve-teacher`): its metadata says the sample shape; the student is an MLP.
    const teacher = await createRemoteTeacher({
      url: spec,
      ...(process.env.PIFLOW_TEACHER_TOKEN ? { token: process.env.PIFLOW_TEACHER_TOKEN } : {}),
    });
    const sampleShape = teacher.metadata.sampleShape;
    if (!sampleShape) {
      teacher.dispose();
      throw new UsageError(
        `The teacher at ${spec} does not advertise a fixed sample shape.`,
        'serve a teacher with a fixed sample shape.',
      );
    }
    return {
      label: `remote teacher ${spec}`,
      teacher,
      sampleShape: [...sampleShape],
      shift: teacher.metadata.shift ?? 1,
      guidanceScale: 1,
      dispose: () => teacher.dispose(),
    };
  }
  const dir = spec.startsWith('model:') ? spec.slice('model:'.length) : spec;
  if (existsSync(dir)) return fromModelDirectory(dir, dir, options);
  throw new UsageError(
    `Unknown teacher "${spec}".`,
    'use checkerboard, mnist, analytic-gm:<file.json>, model:<dir>, a folder written by `piflow train-teacher`, or an http(s):// teacher server URL.',
  );
}

/**
 * The folder of a model spec: `checkerboard` / `mnist` / `fashion-mnist` (the shipped teachers), `checkerboard/gm-4`, `mnist/gm-4`,
 * … (a shipped model, unless a folder of that relative path exists here), `model:<dir>` or a folder.
 */
export function modelDirectory(spec: string): string {
  if (SHIPPED_TEACHERS.includes(spec)) return path.join(shippedModelsDir(), spec, 'teacher');
  if (spec.startsWith('model:')) return spec.slice('model:'.length);
  if (/^(checkerboard|mnist|fashion-mnist)\/[\w-]+$/.test(spec) && !existsSync(spec)) {
    const shipped = path.join(shippedModelsDir(), spec);
    if (existsSync(shipped)) return shipped;
  }
  return spec;
}

/**
 * Loads a model folder (student or teacher) or a shipped model (see {@link modelDirectory}). Students are built
 * by their family, found among the built-ins, the `plugins` (package names or paths), or the package the model
 * file names.
 */
export async function loadAnyModel(
  spec: string,
  plugins: readonly string[] = [],
): Promise<{ model: StoredModel; manifest: ModelManifest; families: PolicyRegistry }> {
  const dir = modelDirectory(spec);
  if (!existsSync(path.join(dir, 'model.json'))) {
    throw new UsageError(
      `No model.json in ${dir}.`,
      'give a folder written by `piflow train-teacher` or `piflow distill`.',
    );
  }
  let manifest: ModelManifest;
  try {
    manifest = upgradeManifest(JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')));
  } catch (error) {
    throw new UsageError(
      `Cannot read ${path.join(dir, 'model.json')}: ${(error as Error).message}`,
      'give a folder written by `piflow train-teacher` or `piflow distill`.',
    );
  }
  const families = await registryForModel(await familyRegistry(plugins), manifest);
  const loaded = await loadModelDirectory(dir, { families });
  return { ...loaded, families };
}
