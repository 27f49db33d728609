import { createRandom, rollout } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import {
  assembleModule,
  convFilterGradSimd,
  F32,
  FunctionBody,
  I32,
  Simd,
  setWasmThreadPool,
  type WasmThreadPool,
} from '@piflow/core/wasm';
import { gm } from '@piflow/policy-gm';
import { gmUParams } from '@piflow/policy-gm/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { createNodeWasmThreadPool } from './wasm-thread-pool';

/** fill(at, count, value): count v128s of `value` from byte `at` (on whichever thread calls it). */
function fillModule(): WebAssembly.Module {
  const f = new FunctionBody([I32, I32, F32]);
  const p = f.local(I32);
  f.get(0).set(p);
  f.countedLoop(1, () => f.get(p).get(2).simd(Simd.f32x4Splat).store128(0), { pointers: [[p, 16]] });
  return new WebAssembly.Module(assembleModule([{ name: 'fill', body: f }], { sharedMemory: true }));
}

const module = fillModule();
const pool = await createNodeWasmThreadPool(3);
afterAll(() => pool.close());

const sharedMemory = () => new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
const fill = (at: number, count: number, value: number) => ({ name: 'fill', args: [at, count, value] });

/** The real pool, recording how many tasks each run is given. */
function countingPool(): { runs: number[]; counting: WasmThreadPool } {
  const runs: number[] = [];
  const counting: WasmThreadPool = {
    threads: pool.threads,
    run(m, memory, tasks) {
      runs.push(tasks.length);
      pool.run(m, memory, tasks);
    },
  };
  return { runs, counting };
}

describe('createNodeWasmThreadPool', () => {
  it('runs one task per thread in one shared memory, and again on a grown memory', () => {
    expect(pool.threads).toBe(3);
    const memory = sharedMemory();
    pool.run(module, memory, [
      [fill(0, 100, 1)],
      [fill(1600, 100, 2), fill(3200, 50, 3)],
      [fill(4000, 10, 4)],
    ]);
    let heap = new Float32Array(memory.buffer);
    expect(heap.slice(0, 400).every((v) => v === 1)).toBe(true);
    expect(heap.slice(400, 800).every((v) => v === 2)).toBe(true);
    expect(heap.slice(800, 1000).every((v) => v === 3)).toBe(true);
    expect(heap.slice(1000, 1040).every((v) => v === 4)).toBe(true);
    expect(heap[1040]).toBe(0);
    // the workers keep their instances; memory grown by the caller is seen by them
    memory.grow(2);
    const end = 65536 * 2; // a byte in the new pages
    pool.run(module, memory, [[], [fill(end, 8, 5)], [fill(end + 128, 8, 6)]]);
    heap = new Float32Array(memory.buffer);
    expect(heap.slice(end / 4, end / 4 + 32).every((v) => v === 5)).toBe(true);
    expect(heap.slice(end / 4 + 32, end / 4 + 64).every((v) => v === 6)).toBe(true);
  });

  it('reports a call that fails on a worker, after every task has ended, and keeps working', () => {
    const memory = sharedMemory();
    expect(() =>
      pool.run(module, memory, [[fill(0, 4, 7)], [{ name: 'missing', args: [] }], [fill(64, 4, 8)]]),
    ).toThrow(/failed on a worker thread.*missing/s);
    const heap = new Float32Array(memory.buffer);
    expect(heap.slice(0, 16).every((v) => v === 7)).toBe(true);
    expect(heap.slice(16, 32).every((v) => v === 8)).toBe(true);
    pool.run(module, memory, [[fill(0, 1, 9)], [fill(16, 1, 9)]]);
    expect(new Float32Array(memory.buffer).slice(0, 8).every((v) => v === 9)).toBe(true);
  });

  it('refuses more tasks than threads', () => {
    const tasks = [[], [], [], []];
    expect(() => pool.run(module, sharedMemory(), tasks)).toThrow(/4 tasks for a pool of 3 threads/);
  });
});

describe('the fused GM rollout on a Node pool', () => {
  it('splits over the threads and gives exactly the one-thread result (several chunks, odd positions)', async () => {
    await useBackend('cpu');
    const { runs, counting } = countingPool();
    const random = createRandom(4);
    for (const [shape, K] of [
      [[100, 28, 28, 1], 8],
      [[3, 37, 3], 4],
    ] as const) {
      const u = gmUParams([...shape], random, K);
      const xSrc = random.normalTensor([...shape]);
      const policy = gm.create(u, xSrc, 0.8);
      const roll = () => {
        const y = rollout(policy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0.3, substeps: 64, fused: true });
        const values = y.dataSync().slice();
        y.dispose();
        return values;
      };
      const previous = setWasmThreadPool(undefined);
      const one = roll();
      setWasmThreadPool(counting);
      runs.length = 0;
      const three = roll();
      setWasmThreadPool(previous);
      expect(runs.length).toBeGreaterThan(0);
      expect(Math.max(...runs)).toBe(3);
      expect(three).toEqual(one);
      policy.dispose();
      tf.dispose([u.means, u.logweights, u.logstd, xSrc]);
    }
  });
});

describe('the conv filter gradient kernel on a Node pool', () => {
  it('splits the output channels over the threads and gives exactly the one-thread result', () => {
    const s = { H: 9, W: 11, C: 8, Ho: 9, Wo: 11, Co: 48, kh: 3, kw: 3, top: 1, left: 1 };
    const N = 5;
    const memory = new WebAssembly.Memory({ initial: 16, maximum: 64, shared: true });
    const heap = new Float32Array(memory.buffer);
    const [x, dy] = [64, 64 + 4 * N * s.H * s.W * s.C];
    const dw = dy + 4 * N * s.Ho * s.Wo * s.Co + 8; // not cache-line aligned
    const filter = s.kh * s.kw * s.C * s.Co;
    const scratch = dw + 4 * filter + 4;
    for (let i = 0; i < (dw - x) / 4; i++) heap[x / 4 + i] = Math.sin(0.37 * i);
    const { runs, counting } = countingPool();
    const grad = (threaded: boolean) => {
      heap.fill(0, dw / 4, dw / 4 + filter);
      const previous = setWasmThreadPool(threaded ? counting : undefined);
      expect(convFilterGradSimd(memory, s, N, { x, dy, dw, scratch })).toBe(true);
      setWasmThreadPool(previous);
      return heap.slice(dw / 4, dw / 4 + filter);
    };
    const one = grad(false);
    const three = grad(true);
    expect(runs).toEqual([3]);
    expect(three).toEqual(one);
    expect(one.some((v) => v !== 0)).toBe(true);
  });
});
