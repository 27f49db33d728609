import { PiflowError } from './errors';

/**
 * Threads for piflow's own WebAssembly kernels. A kernel that can split its work (the fused GM rollout)
 * asks for the registered pool; where there is none (browsers' main thread, which may not block, or a
 * single-threaded setup) it runs everything on the calling thread. A platform package registers a pool
 * (@piflow/backend-node does when `setupWasm({ threads })` asks for more than one thread).
 */

/** One call of an export of a kernel module: the export's name and its numeric arguments. */
export interface WasmCall {
  readonly name: string;
  readonly args: readonly number[];
}

/**
 * Runs lists of calls of one module's exports on several threads at once, every thread's instance working
 * in the same shared memory.
 */
export interface WasmThreadPool {
  /** Threads that run tasks, the caller's included (≥ 1). */
  readonly threads: number;
  /**
   * Runs `tasks[i]` (its calls in order) on thread i — task 0 on the caller — with instances of `module`
   * importing `memory` (a shared WebAssembly.Memory) as env.memory; returns when every task has finished.
   * At most `threads` tasks. Throws, once every task has ended, if any call threw.
   */
  run(module: WebAssembly.Module, memory: WebAssembly.Memory, tasks: readonly (readonly WasmCall[])[]): void;
}

// A global slot, so that every copy of @piflow/core loaded in a process sees the same pool.
const slot = Symbol.for('@piflow/core/wasmThreadPool');
type Holder = { [slot]?: WasmThreadPool };

/** Registers the pool piflow's kernels use (undefined: none, everything on the caller); returns the previous. */
export function setWasmThreadPool(pool: WasmThreadPool | undefined): WasmThreadPool | undefined {
  const holder = globalThis as Holder;
  const previous = holder[slot];
  holder[slot] = pool;
  return previous;
}

/** The registered pool, if any. */
export function wasmThreadPool(): WasmThreadPool | undefined {
  return (globalThis as Holder)[slot];
}

/** Runs the calls on the caller, with the given instance's exports (what a kernel does without a pool). */
export function runWasmCalls(exports: WebAssembly.Exports, calls: readonly WasmCall[]): void {
  for (const { name, args } of calls) {
    const fn = exports[name];
    if (typeof fn !== 'function') throw new PiflowError(`The wasm module exports no function "${name}".`);
    (fn as (...a: number[]) => void)(...args);
  }
}

/**
 * Cuts `costs` (one per work unit, in order) into at most `parts` contiguous ranges of about equal total
 * cost; returns the ranges' end indices (the last is costs.length). Empty ranges are left out.
 */
export function splitByCost(costs: readonly number[], parts: number): number[] {
  const total = costs.reduce((a, c) => a + c, 0);
  const ends: number[] = [];
  let acc = 0;
  for (let i = 0; i < costs.length; i++) {
    acc += costs[i]!;
    const part = ends.length + 1;
    if (part < parts && acc >= (total * part) / parts) ends.push(i + 1);
  }
  if (ends[ends.length - 1] !== costs.length) ends.push(costs.length);
  return ends;
}
