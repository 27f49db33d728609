import { assertOneOf, describeValue, InvalidArgumentError, PiflowError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { registerWebGPUKernels } from './register-kernels';

/** Options of the Node path (Dawn, through the npm `webgpu` package). */
export interface NodeWebGPUOptions {
  /**
   * Dawn toggles passed to the `webgpu` package's `create()`. Default `['backend=opengles']`, which runs on
   * Mesa's llvmpipe where there is no GPU; on a machine with a GPU pass e.g. `['backend=vulkan']`.
   */
  dawnOptions?: string[];
  /**
   * Sets `EGL_PLATFORM=surfaceless` in `process.env` when it is unset (needed for headless OpenGL ES).
   * Default true.
   */
  surfacelessEGL?: boolean;
  /**
   * Worker threads of Mesa's llvmpipe (the software GPU behind Dawn's OpenGL ES backend where there is no
   * GPU), set as `LP_NUM_THREADS` before Dawn starts. `'auto'` (default) sets `llvmpipeThreadCount(cores)`
   * when `LP_NUM_THREADS` is unset; a number sets it; `false` leaves llvmpipe's default (one thread per core).
   * llvmpipe splits every dispatch into one fixed chunk per thread; with one thread per core, two chunks of
   * a dispatch often ran one after the other on one core while the other core idled (measured on a 2-vCPU VM,
   * docs/BENCHMARKS.md), and nothing moves the work of a waiting chunk. Smaller chunks keep every core busy.
   * No effect on a real GPU's driver.
   */
  llvmpipeThreads?: number | 'auto' | false;
}

export interface SetupWebGPUOptions {
  /**
   * Where the GPU comes from: `true` or an options object forces Node's Dawn binding (the optional peer
   * `webgpu`), `false` forces the browser's `navigator.gpu`. Default: the browser's when it has one, else Dawn.
   */
  node?: boolean | NodeWebGPUOptions;
  /**
   * The adapter feature level requested from `navigator.gpu.requestAdapter`. 'compatibility' (default)
   * selects the OpenGL ES adapter that software rendering (Mesa llvmpipe) offers; 'core' leaves tfjs's
   * request unchanged.
   */
  featureLevel?: 'compatibility' | 'core';
  /** Make 'webgpu' the active tfjs backend (default true). */
  setBackend?: boolean;
}

export interface WebGPUSetup {
  /** The tfjs backend name, 'webgpu'. */
  backend: 'webgpu';
  /** Where the GPU comes from. */
  platform: 'browser' | 'node';
  /** The GPU object tfjs uses (`navigator.gpu`). */
  gpu: GPU;
}

/** Thrown when the WebGPU backend cannot be set up (no WebGPU, missing optional peer, no adapter). */
export class WebGPUUnavailableError extends PiflowError {
  override name = 'WebGPUUnavailableError';
}

export interface WebGPUNodeModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

const WRAPPED = Symbol.for('piflow.webgpu.requestAdapterWrapped');
let pending: Promise<WebGPUSetup> | undefined;

function isNodeRuntime(): boolean {
  const process = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof process?.versions?.node === 'string';
}

/** Adds `featureLevel` to every adapter request (tfjs's own request included). Idempotent. */
function wrapRequestAdapter(gpu: GPU, featureLevel: 'compatibility' | 'core'): void {
  if (featureLevel === 'core') return;
  const target = gpu as GPU & { [WRAPPED]?: boolean };
  if (target[WRAPPED]) return;
  const original = gpu.requestAdapter.bind(gpu);
  Object.defineProperty(gpu, 'requestAdapter', {
    configurable: true,
    writable: true,
    value: (options?: GPURequestAdapterOptions) =>
      original({ ...options, featureLevel } as GPURequestAdapterOptions),
  });
  target[WRAPPED] = true;
}

/**
 * Imports the optional peer `webgpu` (Dawn for Node); when it is missing, throws an error naming the package
 * and the command that installs it. (`specifier` exists for tests.)
 */
export async function importDawn(specifier = 'webgpu'): Promise<WebGPUNodeModule> {
  try {
    // A variable specifier keeps bundlers from pulling the native Node binding into browser builds.
    return (await import(/* @vite-ignore */ specifier)) as WebGPUNodeModule;
  } catch (cause) {
    throw new WebGPUUnavailableError(
      'WebGPU in Node needs the optional peer dependency `webgpu` (Dawn): install it with `npm install webgpu@0.6` ' +
        `(or \`pnpm add webgpu@0.6\`). Loading "${specifier}" failed: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
  }
}

/** Largest `LP_NUM_THREADS` llvmpipe honours (its LP_MAX_THREADS; Mesa 22.3 starts 32 threads for 40). */
export const LLVMPIPE_MAX_THREADS = 32;

/**
 * The llvmpipe worker count `setupWebGPU` sets by default on a machine with `cores` cores: twice the cores
 * and at least 16 (at most LLVMPIPE_MAX_THREADS), so each dispatch is split into chunks small enough that
 * the scheduler can spread them over every core; undefined on one core, where llvmpipe runs dispatches on
 * the calling thread.
 */
export function llvmpipeThreadCount(cores: number): number | undefined {
  if (!Number.isInteger(cores) || cores <= 1) return undefined;
  return Math.min(LLVMPIPE_MAX_THREADS, Math.max(16, 2 * cores));
}

async function availableCores(): Promise<number> {
  // A variable specifier keeps browser bundlers away from node:os (only the Node path gets here).
  const specifier = 'node:os';
  const os = (await import(/* @vite-ignore */ specifier)) as typeof import('node:os');
  return os.availableParallelism?.() ?? os.cpus().length;
}

/** Checks the Node options at the API boundary (also when setup already ran). */
function validateNodeOptions(options: NodeWebGPUOptions): void {
  const { dawnOptions, llvmpipeThreads } = options;
  if (
    dawnOptions !== undefined &&
    (!Array.isArray(dawnOptions) || dawnOptions.some((o) => typeof o !== 'string'))
  ) {
    throw new InvalidArgumentError(
      'options.node.dawnOptions',
      "an array of Dawn toggle strings such as ['backend=opengles']",
      describeValue(dawnOptions),
    );
  }
  if (
    llvmpipeThreads !== undefined &&
    llvmpipeThreads !== 'auto' &&
    llvmpipeThreads !== false &&
    !(Number.isInteger(llvmpipeThreads) && llvmpipeThreads >= 0 && llvmpipeThreads <= LLVMPIPE_MAX_THREADS)
  ) {
    throw new InvalidArgumentError(
      'options.node.llvmpipeThreads',
      `'auto', false or an integer from 0 to ${LLVMPIPE_MAX_THREADS}`,
      describeValue(llvmpipeThreads),
    );
  }
}

async function loadDawn(options: NodeWebGPUOptions): Promise<GPU> {
  const { dawnOptions = ['backend=opengles'], surfacelessEGL = true, llvmpipeThreads = 'auto' } = options;
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
  if (surfacelessEGL && env && env.EGL_PLATFORM === undefined) env.EGL_PLATFORM = 'surfaceless';
  // llvmpipe reads LP_NUM_THREADS when Dawn opens the OpenGL ES display, i.e. after this.
  if (env && typeof llvmpipeThreads === 'number') env.LP_NUM_THREADS = String(llvmpipeThreads);
  if (env && llvmpipeThreads === 'auto' && env.LP_NUM_THREADS === undefined) {
    const threads = llvmpipeThreadCount(await availableCores());
    if (threads !== undefined) env.LP_NUM_THREADS = String(threads);
  }
  const dawn = await importDawn();
  // GPUBufferUsage, GPUMapMode, GPUShaderStage, … : tfjs's WebGPU backend reads them as globals.
  for (const [name, value] of Object.entries(dawn.globals)) {
    if (!(name in globalThis)) (globalThis as Record<string, unknown>)[name] = value;
  }
  return dawn.create(dawnOptions);
}

async function setup(options: SetupWebGPUOptions): Promise<WebGPUSetup> {
  const { featureLevel = 'compatibility' } = options;
  const navigatorGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const useNode = options.node === undefined ? !navigatorGpu && isNodeRuntime() : options.node !== false;
  let gpu: GPU;
  if (useNode) {
    gpu = await loadDawn(typeof options.node === 'object' ? options.node : {});
    const g = globalThis as { navigator?: { gpu?: GPU } };
    if (g.navigator) {
      Object.defineProperty(g.navigator, 'gpu', { configurable: true, value: gpu });
    } else {
      Object.defineProperty(globalThis, 'navigator', {
        configurable: true,
        writable: true,
        value: { gpu },
      });
    }
  } else {
    if (!navigatorGpu) {
      throw new WebGPUUnavailableError(
        'WebGPU is not available here: `navigator.gpu` is undefined (a browser without WebGPU, a page not ' +
          'served from a secure origin, or Chromium without --enable-unsafe-webgpu). In Node pass { node: true } ' +
          'and install `webgpu`.',
      );
    }
    gpu = navigatorGpu;
  }
  wrapRequestAdapter(gpu, featureLevel);
  // tfjs-backend-webgpu registers its backend at import time only when navigator.gpu exists, so it is
  // imported here, after the GPU is in place.
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!tf.findBackendFactory('webgpu')) {
    throw new WebGPUUnavailableError(
      '@tensorflow/tfjs-backend-webgpu was imported before navigator.gpu existed and did not register the ' +
        "'webgpu' backend: call setupWebGPU() before anything imports @tensorflow/tfjs-backend-webgpu.",
    );
  }
  registerWebGPUKernels();
  return { backend: 'webgpu', platform: useNode ? 'node' : 'browser', gpu };
}

/**
 * Sets up tfjs's WebGPU backend: in a browser from `navigator.gpu`, in Node from Dawn (the optional peer
 * `webgpu`), with adapter requests asking for `featureLevel` (default 'compatibility', which is what software
 * GPUs offer), and registers piflow's fused WGSL rollout kernels. Makes 'webgpu' the active backend unless
 * `setBackend` is false. Runs once; later calls return the first result (and set the backend again).
 */
export async function setupWebGPU(options: SetupWebGPUOptions = {}): Promise<WebGPUSetup> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(
      'options',
      '{ node?, featureLevel?, setBackend? }',
      describeValue(options),
    );
  }
  if (
    options.node !== undefined &&
    (options.node === null || (typeof options.node !== 'boolean' && typeof options.node !== 'object'))
  ) {
    throw new InvalidArgumentError(
      'options.node',
      'a boolean or { dawnOptions?, surfacelessEGL?, llvmpipeThreads? }',
      describeValue(options.node),
    );
  }
  if (typeof options.node === 'object' && options.node !== null) validateNodeOptions(options.node);
  assertOneOf('options.featureLevel', options.featureLevel ?? 'compatibility', ['compatibility', 'core']);
  if (!pending) {
    pending = setup(options);
    pending.catch(() => {
      pending = undefined;
    });
  }
  const result = await pending;
  if (options.setBackend !== false) {
    const ok = await tf.setBackend('webgpu');
    if (!ok || tf.getBackend() !== 'webgpu') {
      throw new WebGPUUnavailableError(
        "tfjs could not initialise the 'webgpu' backend (no WebGPU adapter; see the warnings above).",
      );
    }
    await tf.ready();
  }
  return result;
}
