import * as tf from '@tensorflow/tfjs-core';
import { describeLoadError, type ModuleLoader } from './module-loader';
import { setupWasm } from './setup-wasm';

/** What a candidate's `init` receives. */
export interface BackendInitContext {
  /** Loads optional packages; `import()` unless the caller injected another loader. */
  loader: ModuleLoader;
}

/**
 * One backend the resolver may choose (onnxruntime/tfjs style): a name, a priority (higher is tried first)
 * and an `init` that makes the tfjs backend `backendName` available, throwing an Error whose message is the
 * reason when it cannot. The resolver calls `init` at most once per registry and caches the outcome.
 */
export interface BackendCandidate {
  /** Name used in `prefer` and in reports, e.g. 'tfjs-node-gpu'. */
  readonly name: string;
  /** The tfjs backend it registers, passed to `tf.setBackend` (e.g. 'tensorflow' for both tfjs-node builds). */
  readonly backendName: string;
  /** Higher is tried first. */
  readonly priority: number;
  /** What to install (or set up) to make it available; printed when it is skipped. */
  readonly installHint: string;
  init(context: BackendInitContext): Promise<void>;
}

/** An error whose message is a candidate's skip reason. */
export class BackendInitError extends Error {
  override name = 'BackendInitError';
}

async function load(loader: ModuleLoader, specifier: string): Promise<unknown> {
  try {
    return await loader(specifier);
  } catch (error) {
    throw new BackendInitError(describeLoadError(specifier, error));
  }
}

function assertRegistered(specifier: string, backendName: string): void {
  if (!tf.findBackendFactory(backendName)) {
    throw new BackendInitError(
      `${specifier} loaded but registered no tfjs backend "${backendName}" with this copy of @tensorflow/tfjs-core (${tf.version_core}); it probably uses another copy: install versions that match @tensorflow/tfjs-core ${tf.version_core}`,
    );
  }
}

function nativeCandidate(
  name: 'tfjs-node-gpu' | 'tfjs-node',
  priority: number,
  installHint: string,
): BackendCandidate {
  const specifier = `@tensorflow/${name}`;
  return {
    name,
    backendName: 'tensorflow',
    priority,
    installHint,
    async init({ loader }) {
      await load(loader, specifier);
      assertRegistered(specifier, 'tensorflow');
    },
  };
}

/** TensorFlow C library with CUDA (Linux x64, NVIDIA GPU). Never installed by default: its installer downloads libtensorflow. */
export const tfjsNodeGpuCandidate: BackendCandidate = nativeCandidate(
  'tfjs-node-gpu',
  50,
  'npm i @tensorflow/tfjs-node-gpu@4.22.0 on Linux x64 with an NVIDIA GPU, its driver, CUDA 11.2 and cuDNN 8.1 (the installer downloads libtensorflow with GPU support; see the @piflow/backend-node README)',
);

/** TensorFlow C library on the CPU. Never installed by default: its installer downloads libtensorflow. */
export const tfjsNodeCandidate: BackendCandidate = nativeCandidate(
  'tfjs-node',
  40,
  'npm i @tensorflow/tfjs-node@4.22.0 (the installer downloads libtensorflow for Linux, macOS or Windows x64)',
);

interface WebGPUModule {
  setupWebGPU?: (options?: unknown) => unknown;
}

/** WebGPU through Dawn (the npm `webgpu` package), via `@piflow/backend-webgpu`'s `setupWebGPU`. */
export const webgpuCandidate: BackendCandidate = {
  name: 'webgpu',
  backendName: 'webgpu',
  priority: 30,
  installHint:
    'npm i @piflow/backend-webgpu webgpu (Dawn for Node; uses Vulkan on a GPU machine, or a software adapter)',
  async init({ loader }) {
    const module = (await load(loader, '@piflow/backend-webgpu')) as WebGPUModule;
    if (typeof module?.setupWebGPU !== 'function') {
      throw new BackendInitError(
        '@piflow/backend-webgpu loaded but exports no setupWebGPU function (install a version that matches @piflow/backend-node)',
      );
    }
    try {
      await module.setupWebGPU();
    } catch (error) {
      throw new BackendInitError(
        `setupWebGPU failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
      );
    }
    assertRegistered('@piflow/backend-webgpu', 'webgpu');
  },
};

/** tfjs's wasm backend (SIMD; no threads in Node), with its files located and the BatchMatMul fix. */
export const wasmCandidate: BackendCandidate = {
  name: 'wasm',
  backendName: 'wasm',
  priority: 20,
  installHint:
    'npm i @tensorflow/tfjs-backend-wasm@<your @tensorflow/tfjs-core version> (a peer dependency of @piflow/backend-node, which npm ≥ 7 and pnpm install with it)',
  async init({ loader }) {
    try {
      await setupWasm({ loader });
    } catch (error) {
      throw new BackendInitError(error instanceof Error ? error.message : String(error));
    }
    assertRegistered('@tensorflow/tfjs-backend-wasm', 'wasm');
  },
};

/** tfjs's plain-JavaScript backend: always works, slowest. */
export const cpuCandidate: BackendCandidate = {
  name: 'cpu',
  backendName: 'cpu',
  priority: 10,
  installHint:
    'npm i @tensorflow/tfjs-backend-cpu@<your @tensorflow/tfjs-core version> (a peer dependency of @piflow/backend-node, which npm ≥ 7 and pnpm install with it)',
  async init({ loader }) {
    await load(loader, '@tensorflow/tfjs-backend-cpu');
    assertRegistered('@tensorflow/tfjs-backend-cpu', 'cpu');
  },
};

/** The default candidates, highest priority first. */
export const defaultBackendCandidates: readonly BackendCandidate[] = [
  tfjsNodeGpuCandidate,
  tfjsNodeCandidate,
  webgpuCandidate,
  wasmCandidate,
  cpuCandidate,
];
