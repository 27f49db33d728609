import { describe, expect, it } from 'vitest';
import { threadsFromQuery, wasmThreads } from './backend';

describe('wasm threads of the demo', () => {
  it('uses every core up to 4 on a cross-origin isolated page, and one thread otherwise', () => {
    expect(wasmThreads(undefined, { crossOriginIsolated: true, hardwareConcurrency: 2 })).toBe(2);
    expect(wasmThreads(undefined, { crossOriginIsolated: true, hardwareConcurrency: 16 })).toBe(4);
    expect(wasmThreads(undefined, { crossOriginIsolated: true, hardwareConcurrency: 1 })).toBe(1);
    expect(wasmThreads(undefined, { crossOriginIsolated: false, hardwareConcurrency: 8 })).toBe(1);
    expect(wasmThreads(3, { crossOriginIsolated: false, hardwareConcurrency: 8 })).toBe(1);
  });

  it('takes ?threads= when given (capped at 4) and ignores values that are not 1 to 8', () => {
    const isolated = { crossOriginIsolated: true, hardwareConcurrency: 2 };
    expect(wasmThreads(threadsFromQuery('?threads=1'), isolated)).toBe(1);
    expect(wasmThreads(threadsFromQuery('?view=mnist&threads=3'), isolated)).toBe(3);
    expect(wasmThreads(threadsFromQuery('?threads=8'), isolated)).toBe(4);
    for (const query of ['?threads=0', '?threads=9', '?threads=1.5', '?threads=two', '?threads=', '']) {
      expect(threadsFromQuery(query), query).toBeUndefined();
    }
  });
});
