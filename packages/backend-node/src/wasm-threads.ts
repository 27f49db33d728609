import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import workerThreads from 'node:worker_threads';
import { PiflowError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/** tfjs's wasm build starts this many pthread workers; its XNNPACK pool takes at most this many threads. */
export const maxWasmThreads = 8;

interface ThreadedWasmModule {
  setThreadsCount(count: number): void;
}

/**
 * Turns on tfjs's multi-threaded wasm binary (XNNPACK's thread pool over pthreads) in Node. tfjs 4.22 leaves it
 * off in Node for two reasons, both worked around here and only while the backend initialises:
 * - its pthread workers are created from `blob:` URLs, which Node's `Worker` refuses: the worker script
 *   (the package's own `wasm-out/…threaded-simd.worker.js` contents) runs as an `eval` worker instead, and the
 *   module factory it asks for by blob URL is `require`d from the package's `wasm-out/` file;
 * - the pool size is capped at half the logical cores (it assumes two hardware threads per core), so on a
 *   2-core machine it would be 1: `os.cpus()` reports `2 · threads` while the module starts.
 * Must run before the wasm backend initialises. The rest of tfjs sees an ordinary wasm backend.
 */
export function enableWasmThreads(wasm: ThreadedWasmModule, threads: number, entry: string): void {
  if (tf.engine().registry.wasm !== undefined) {
    throw new PiflowError(
      'setupWasm({ threads }) must run before the wasm backend initialises (before tf.setBackend("wasm")): the thread pool is created with the backend.',
    );
  }
  const factory = tf.findBackendFactory('wasm');
  if (factory === null) {
    throw new PiflowError('@tensorflow/tfjs-backend-wasm loaded but registered no "wasm" backend.');
  }
  const packageRequire = createRequire(entry);
  let wasmOut = path.dirname(entry);
  while (path.basename(wasmOut) !== 'dist' && wasmOut !== path.dirname(wasmOut))
    wasmOut = path.dirname(wasmOut);
  wasmOut = path.join(path.dirname(wasmOut), 'wasm-out');
  const factoryPath = path.join(wasmOut, 'tfjs-backend-wasm-threaded-simd.js');
  const { wasmWorkerContents } = packageRequire(
    path.join(wasmOut, 'tfjs-backend-wasm-threaded-simd.worker.js'),
  ) as { wasmWorkerContents: string };
  // tfjs escapes the newlines inside the script's string literals the same way before making its blob.
  const marker = 'var initializedJS=false;';
  if (!wasmWorkerContents.includes(marker)) {
    throw new PiflowError(
      `The pthread worker script of @tensorflow/tfjs-backend-wasm (${wasmOut}) is not the one this version of @piflow/backend-node knows; use setupWasm({ threads: 1 }).`,
    );
  }
  const workerSource = wasmWorkerContents
    .replace(/\n/g, '\\n')
    .replace(
      marker,
      `importScripts=function(f){if(String(f).startsWith("blob:")){globalThis.WasmBackendModuleThreadedSimd=require(${JSON.stringify(factoryPath)});return}(0,eval)(require("fs").readFileSync(f,"utf8"))};${marker}`,
    );
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      const NodeWorker = workerThreads.Worker;
      const cpus = os.cpus;
      class BlobWorker extends NodeWorker {
        constructor(file: string | URL, options?: workerThreads.WorkerOptions) {
          if (typeof file === 'string' && file.startsWith('blob:'))
            super(workerSource, { ...options, eval: true });
          else super(file, options);
          // The pool's threads wait for work for the life of the process; they must not keep it alive (the main
          // thread blocks while they compute, so nothing is cut short). Emscripten refs a worker that runs a
          // thread: that is made a no-op.
          this.unref();
        }
        override ref(): void {}
      }
      const patched = workerThreads as { Worker: typeof NodeWorker };
      patched.Worker = BlobWorker;
      const reported = cpus();
      os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => reported[i % reported.length]!);
      try {
        return await factory();
      } finally {
        patched.Worker = NodeWorker;
        os.cpus = cpus;
      }
    },
    2,
  );
}
