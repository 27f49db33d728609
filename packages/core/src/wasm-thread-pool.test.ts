import { describe, expect, it } from 'vitest';
import { assembleModule, F32, FunctionBody, I32, Simd } from './wasm-assembler';
import {
  runWasmCalls,
  setWasmThreadPool,
  splitByCost,
  type WasmThreadPool,
  wasmThreadPool,
} from './wasm-thread-pool';

describe('wasm thread pool helpers', () => {
  it('splitByCost cuts contiguous ranges of about equal cost, never more than asked, covering all', () => {
    expect(splitByCost([1, 1, 1, 1], 2)).toEqual([2, 4]);
    expect(splitByCost([1, 1, 1, 1, 1, 1], 3)).toEqual([2, 4, 6]);
    expect(splitByCost([10, 1, 1, 1], 2)).toEqual([1, 4]);
    expect(splitByCost([5], 4)).toEqual([1]);
    expect(splitByCost([], 2)).toEqual([0]);
    // uneven: each part within one unit's cost of the mean
    const costs = Array.from({ length: 101 }, (_, i) => 1 + (i % 7));
    const ends = splitByCost(costs, 3);
    expect(ends.length).toBe(3);
    expect(ends.at(-1)).toBe(costs.length);
    const total = costs.reduce((a, b) => a + b, 0);
    let start = 0;
    for (const end of ends) {
      const part = costs.slice(start, end).reduce((a, b) => a + b, 0);
      expect(Math.abs(part - total / 3)).toBeLessThanOrEqual(7);
      start = end;
    }
  });

  it('runWasmCalls runs calls in order and names a missing export', () => {
    const f = new FunctionBody([I32, F32]);
    f.get(0).get(1).simd(Simd.f32x4Splat).store128(0);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const { exports } = new WebAssembly.Instance(
      new WebAssembly.Module(assembleModule([{ name: 'put', body: f }])),
      { env: { memory } },
    );
    runWasmCalls(exports, [
      { name: 'put', args: [0, 1] },
      { name: 'put', args: [8, 2] },
    ]);
    expect(Array.from(new Float32Array(memory.buffer, 0, 6))).toEqual([1, 1, 2, 2, 2, 2]);
    expect(() => runWasmCalls(exports, [{ name: 'nothing', args: [] }])).toThrow(
      /exports no function "nothing"/,
    );
  });

  it('setWasmThreadPool registers one pool per process and returns the previous one', () => {
    const pool: WasmThreadPool = { threads: 2, run: () => {} };
    const before = setWasmThreadPool(pool);
    expect(wasmThreadPool()).toBe(pool);
    expect(setWasmThreadPool(before)).toBe(pool);
    expect(wasmThreadPool()).toBe(before);
  });
});
