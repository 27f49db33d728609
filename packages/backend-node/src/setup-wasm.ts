import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import {
  describeValue,
  InvalidArgumentError,
  installWasmBatchMatMulFix,
  isWasmBatchMatMulFixInstalled,
  PiflowError,
} from '@piflow/core';
import { setWasmThreadPool } from '@piflow/core/wasm';
import { describeLoadError, importModule, type ModuleLoader } from './module-loader';
import { createNodeWasmThreadPool } from './wasm-thread-pool';
import { enableWasmThreads, maxWasmThreads } from './wasm-threads';

/** The binaries the wasm backend may fetch (the threaded one with `setupWasm({ threads })` above 1). */
export const wasmBinaryNames = [
  'tfjs-backend-wasm.wasm',
  'tfjs-backend-wasm-simd.wasm',
  'tfjs-backend-wasm-threaded-simd.wasm',
] as const;

export interface SetupWasmOptions {
  /** Directory holding the .wasm files; found next to the installed package's `dist/` entry when omitted. */
  wasmDirectory?: string;
  /** Install the faster BatchMatMul kernel (default true). */
  batchMatMulFix?: boolean;
  /** How `@tensorflow/tfjs-backend-wasm` is loaded (default: `import()`). */
  loader?: ModuleLoader;
  /**
   * Threads of XNNPACK's pool (convolutions, matMuls), 1 to 8. Default: leave as configured (1 in a fresh
   * process: tfjs runs single-threaded in Node). Above 1 the threaded wasm binary runs, on worker threads, and
   * piflow's own kernels (the fused GM rollout) split their work over as many threads (`wasmThreadPool()` of
   * @piflow/core/wasm); set
   * it before the wasm backend initialises. It pays on an idle machine only: every process's pool spins on its
   * cores, so parallel jobs (test runners, several trainings) are slower with it.
   */
  threads?: number;
}

export interface WasmSetup {
  /** The directory passed to `setWasmPaths`, with a trailing separator. */
  wasmDirectory: string;
  /** Whether the BatchMatMul fix is installed. */
  batchMatMulFix: boolean;
  /** The threads the wasm backend starts with (1 unless `threads` asked for more). */
  threads: number;
}

interface WasmModule {
  setWasmPaths(prefix: string, usePlatformFetch?: boolean): void;
  setThreadsCount(count: number): void;
}

/**
 * The directory of `@tensorflow/tfjs-backend-wasm`'s .wasm binaries: the `dist/` folder above the package's
 * resolved main entry. Throws, naming the directory searched, when the binaries are not there.
 */
export function locateWasmFiles(from: string = import.meta.url): string {
  const entry = resolveWasmEntry(from);
  let dir = path.dirname(entry);
  while (path.basename(dir) !== 'dist' && dir !== path.dirname(dir)) dir = path.dirname(dir);
  const missing = wasmBinaryNames.filter((name) => !existsSync(path.join(dir, name)));
  if (missing.length > 0) {
    throw new PiflowError(
      `@tensorflow/tfjs-backend-wasm is installed (${entry}) but ${dir} lacks ${missing.join(', ')}; reinstall the package.`,
    );
  }
  return `${dir}${path.sep}`;
}

/** The resolved main entry of `@tensorflow/tfjs-backend-wasm`. */
function resolveWasmEntry(from: string = import.meta.url): string {
  try {
    return createRequire(from).resolve('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    throw new PiflowError(
      `Cannot locate @tensorflow/tfjs-backend-wasm: ${describeLoadError('@tensorflow/tfjs-backend-wasm', error)}. Install it: npm i @tensorflow/tfjs-backend-wasm@4.22.0`,
    );
  }
}

let configuredDirectory: string | undefined;
let configuredThreads = 1;

/**
 * Prepares the tfjs wasm backend for Node: loads `@tensorflow/tfjs-backend-wasm`, points it at its .wasm
 * files (`setWasmPaths`) and installs the faster BatchMatMul kernel; with `threads` above 1, runs XNNPACK on
 * that many worker threads. Call before `tf.setBackend('wasm')`; calling again is harmless: the paths and
 * threads are set once per process, and the result names the directory and threads in use.
 */
export async function setupWasm(options: SetupWasmOptions = {}): Promise<WasmSetup> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'an options object', describeValue(options));
  }
  const { wasmDirectory, batchMatMulFix = true, loader = importModule, threads } = options;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= maxWasmThreads)) {
    throw new InvalidArgumentError(
      'options.threads',
      `an integer from 1 to ${maxWasmThreads}`,
      describeValue(threads),
    );
  }
  if (wasmDirectory !== undefined && typeof wasmDirectory !== 'string') {
    throw new InvalidArgumentError(
      'options.wasmDirectory',
      'a directory path string',
      describeValue(wasmDirectory),
    );
  }
  if (typeof batchMatMulFix !== 'boolean') {
    throw new InvalidArgumentError('options.batchMatMulFix', 'a boolean', describeValue(batchMatMulFix));
  }
  if (typeof loader !== 'function') {
    throw new InvalidArgumentError(
      'options.loader',
      'a function (specifier) => Promise<module>',
      describeValue(loader),
    );
  }
  let wasm: WasmModule;
  try {
    wasm = (await loader('@tensorflow/tfjs-backend-wasm')) as WasmModule;
  } catch (error) {
    throw new PiflowError(describeLoadError('@tensorflow/tfjs-backend-wasm', error));
  }
  if (typeof wasm?.setWasmPaths !== 'function') {
    throw new PiflowError('@tensorflow/tfjs-backend-wasm loaded but exports no setWasmPaths function.');
  }
  if (configuredDirectory === undefined) {
    let dir: string;
    if (wasmDirectory === undefined) {
      dir = locateWasmFiles();
    } else {
      dir =
        wasmDirectory.endsWith(path.sep) || wasmDirectory.endsWith('/')
          ? wasmDirectory
          : `${wasmDirectory}${path.sep}`;
      const missing = wasmBinaryNames.filter((name) => !existsSync(path.join(dir, name)));
      if (missing.length > 0) {
        throw new InvalidArgumentError(
          'options.wasmDirectory',
          `a directory holding ${wasmBinaryNames.join(', ')}`,
          `${JSON.stringify(wasmDirectory)}, which lacks ${missing.join(', ')}`,
        );
      }
    }
    wasm.setWasmPaths(dir);
    configuredDirectory = dir;
  }
  if (threads !== undefined && threads !== configuredThreads) {
    if (configuredThreads !== 1) {
      throw new PiflowError(
        `setupWasm: the wasm backend of this process is already set up with ${configuredThreads} threads (asked for ${threads}).`,
      );
    }
    if (typeof wasm.setThreadsCount !== 'function') {
      throw new PiflowError('@tensorflow/tfjs-backend-wasm loaded but exports no setThreadsCount function.');
    }
    enableWasmThreads(wasm, threads, resolveWasmEntry());
    configuredThreads = threads;
    // piflow's own kernels (the fused GM rollout) split their work over as many threads
    setWasmThreadPool(await createNodeWasmThreadPool(threads));
  }
  if (batchMatMulFix) installWasmBatchMatMulFix();
  return {
    wasmDirectory: configuredDirectory,
    batchMatMulFix: isWasmBatchMatMulFixInstalled(),
    threads: configuredThreads,
  };
}
