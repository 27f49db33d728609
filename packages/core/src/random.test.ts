import { describe, expect, it } from 'vitest';
import { createRandom, Random } from './random';

describe('Random', () => {
  it('is reproducible from a seed and resumable from its state', () => {
    const a = createRandom(42);
    const b = createRandom(42);
    expect(Array.from({ length: 5 }, () => a.uniform())).toEqual(
      Array.from({ length: 5 }, () => b.uniform()),
    );
    const state = a.state();
    const next = Array.from({ length: 5 }, () => a.nextUint32());
    const resumed = Random.fromState(state);
    expect(Array.from({ length: 5 }, () => resumed.nextUint32())).toEqual(next);
    expect(createRandom(1).uniform()).not.toBe(createRandom(2).uniform());
  });

  it('draws standard normals and uniform permutations', () => {
    const r = createRandom(7);
    const values = r.fillNormal(new Float64Array(200000));
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.01);
    const p = Array.from(r.permutation(50));
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(() => createRandom(1.5)).toThrow(/seed/);
  });
});
