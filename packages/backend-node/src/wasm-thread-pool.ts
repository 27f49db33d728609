import { once } from 'node:events';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { PiflowError } from '@piflow/core';
import { runWasmCalls, type WasmCall, type WasmThreadPool } from '@piflow/core/wasm';

/**
 * A WasmThreadPool on Node worker threads, for piflow's own kernels (@piflow/core/wasm): the caller runs task
 * 0 and blocks (Atomics.wait) until the workers have run theirs. Each worker waits on a shared control word;
 * a task's calls come as a message it reads synchronously (receiveMessageOnPort), with the module and the
 * shared memory the first time a worker sees that pair. A worker that has not taken its task within
 * `takeTimeoutMs` (still starting, or stuck) has it taken back and run by the caller.
 */

// control[0]: the task's state; control[1]: its sequence number (messages of tasks taken back are skipped)
const IDLE = 0;
const POSTED = 1;
const TAKEN = 2;
const DONE = 3;
const FAILED = 4;

const workerSource = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { control, port } = workerData;
const instances = new Map();
for (;;) {
  const state = Atomics.load(control, 0);
  if (state !== ${POSTED}) {
    Atomics.wait(control, 0, state);
    continue;
  }
  if (Atomics.compareExchange(control, 0, ${POSTED}, ${TAKEN}) !== ${POSTED}) continue;
  const sequence = Atomics.load(control, 1);
  let outcome = ${DONE};
  try {
    let task;
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      if (m.message.module) instances.set(m.message.key, new WebAssembly.Instance(m.message.module, { env: { memory: m.message.memory } }).exports);
      if (m.message.sequence === sequence) { task = m.message; break; }
    }
    if (!task) throw new Error('task ' + sequence + ' was not received');
    const exports = instances.get(task.key);
    if (!exports) throw new Error('no instance for module ' + task.key);
    for (const { name, args } of task.calls) {
      if (typeof exports[name] !== 'function') throw new Error('the module exports no function "' + name + '"');
      exports[name](...args);
    }
  } catch (error) {
    port.postMessage({ sequence, error: String(error && error.message || error) });
    outcome = ${FAILED};
  }
  Atomics.store(control, 0, outcome);
  Atomics.notify(control, 0);
}
`;

interface PoolWorker {
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly control: Int32Array;
  /** Keys of the (module, memory) pairs this worker has instantiated (or has queued to). */
  readonly known: Set<number>;
  sequence: number;
  /** Did not take a task in time: gets no more. */
  unresponsive: boolean;
}

export interface NodeWasmThreadPoolOptions {
  /** How long the caller waits for a worker to take its task before running it itself (default 10 000 ms). */
  takeTimeoutMs?: number;
}

/** A Node WasmThreadPool of `threads` threads (the caller and threads − 1 workers), its workers started. */
export async function createNodeWasmThreadPool(
  threads: number,
  options: NodeWasmThreadPoolOptions = {},
): Promise<WasmThreadPool & { close(): Promise<void> }> {
  const { takeTimeoutMs = 10_000 } = options;
  const workers: PoolWorker[] = [];
  for (let i = 1; i < threads; i++) {
    const control = new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { control, port: port2 },
      transferList: [port2],
    });
    await once(worker, 'online');
    // it waits for tasks for the life of the process; it must not keep the process alive (unref'd once
    // started: a process awaiting only an unref'd worker would exit)
    worker.unref();
    port1.unref();
    workers.push({ worker, port: port1, control, known: new Set(), sequence: 0, unresponsive: false });
  }
  const keys = new WeakMap<WebAssembly.Module, WeakMap<WebAssembly.Memory, number>>();
  const local = new WeakMap<WebAssembly.Module, WeakMap<WebAssembly.Memory, WebAssembly.Exports>>();
  let nextKey = 0;
  /** The value for (module, memory) in a two-level WeakMap, made by `make` the first time. */
  function lookup<T>(
    table: WeakMap<WebAssembly.Module, WeakMap<WebAssembly.Memory, T>>,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    make: () => T,
  ): T {
    let byMemory = table.get(module);
    if (!byMemory) {
      byMemory = new WeakMap();
      table.set(module, byMemory);
    }
    let value = byMemory.get(memory);
    if (value === undefined) {
      value = make();
      byMemory.set(memory, value);
    }
    return value;
  }
  const keyOf = (module: WebAssembly.Module, memory: WebAssembly.Memory): number =>
    lookup(keys, module, memory, () => nextKey++);
  const localExports = (module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Exports =>
    lookup(local, module, memory, () => new WebAssembly.Instance(module, { env: { memory } }).exports);

  return {
    threads,
    run(module, memory, tasks) {
      if (tasks.length > threads) {
        throw new PiflowError(`WasmThreadPool.run: ${tasks.length} tasks for a pool of ${threads} threads.`);
      }
      const key = keyOf(module, memory);
      const posted: [PoolWorker, readonly WasmCall[]][] = [];
      const mine: (readonly WasmCall[])[] = [tasks[0] ?? []];
      tasks.slice(1).forEach((calls, i) => {
        const w = workers[i]!;
        if (w.unresponsive || calls.length === 0) {
          mine.push(calls);
          return;
        }
        const first = !w.known.has(key);
        w.known.add(key);
        w.sequence = (w.sequence + 1) | 0;
        w.port.postMessage({
          sequence: w.sequence,
          key,
          calls,
          ...(first ? { module, memory } : {}),
        });
        Atomics.store(w.control, 1, w.sequence);
        Atomics.store(w.control, 0, POSTED);
        Atomics.notify(w.control, 0);
        posted.push([w, calls]);
      });
      let failure: unknown;
      const runHere = (calls: readonly WasmCall[]) => {
        try {
          runWasmCalls(localExports(module, memory), calls);
        } catch (error) {
          failure ??= error;
        }
      };
      runHere(mine[0]!);
      for (const [w, calls] of posted) {
        if (Atomics.load(w.control, 0) === POSTED) Atomics.wait(w.control, 0, POSTED, takeTimeoutMs);
        if (Atomics.compareExchange(w.control, 0, POSTED, IDLE) === POSTED) {
          // not taken in time: run it here; the worker skips its message later and gets no more tasks
          w.unresponsive = true;
          mine.push(calls);
          continue;
        }
        let state = Atomics.load(w.control, 0);
        while (state === TAKEN) {
          Atomics.wait(w.control, 0, TAKEN);
          state = Atomics.load(w.control, 0);
        }
        if (state === FAILED) {
          const report = receiveMessageOnPort(w.port)?.message as { error?: string } | undefined;
          failure ??= new PiflowError(
            `A wasm kernel failed on a worker thread: ${report?.error ?? 'unknown error'}`,
          );
        }
        Atomics.store(w.control, 0, IDLE);
      }
      for (const calls of mine.slice(1)) runHere(calls);
      if (failure !== undefined) throw failure;
    },
    async close() {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      for (const w of workers) w.port.close();
    },
  };
}
