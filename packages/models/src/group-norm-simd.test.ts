import { createRandom } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import { groupNormSimd } from './group-norm-simd';

/** Float64 JS versions of the four passes (the functions' definitions). */
function expected(x: Float32Array, y: Float32Array, coefficients: Float32Array, rows: number, C: number) {
  const sums = new Float64Array(2 * C);
  const sums2 = new Float64Array(2 * C);
  const affine = new Float64Array(rows * C);
  const affine2 = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      sums[c]! += x[i]!;
      sums[C + c]! += x[i]! * x[i]!;
      sums2[c]! += y[i]!;
      sums2[C + c]! += y[i]! * x[i]!;
      affine[i] = x[i]! * coefficients[c]! + coefficients[C + c]!;
      affine2[i] = coefficients[c]! * y[i]! + coefficients[C + c]! * x[i]! + coefficients[2 * C + c]!;
    }
  return { sums, sums2, affine, affine2 };
}

function worst(got: Float32Array, want: Float64Array): number {
  let w = 0;
  for (let i = 0; i < want.length; i++)
    w = Math.max(w, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
  return w;
}

describe('GroupNorm SIMD passes', () => {
  const random = createRandom(3);
  for (const shared of [false, true]) {
    it(`sums, affine, sums2 and affine2 equal float64 JS loops (${shared ? 'shared' : 'own'} memory; C = 4…128, 1…70 rows)`, () => {
      const memory = new WebAssembly.Memory(
        shared ? { initial: 32, maximum: 65536, shared: true } : { initial: 32 },
      );
      for (const C of [4, 8, 12, 32, 128]) {
        const kernels = groupNormSimd(C, memory)!;
        expect(kernels, `kernels for C = ${C}`).toBeDefined();
        for (const rows of [1, 5, 70]) {
          // Layout (bytes): x at 64 + 4 (an unaligned start), y, out, coefficients, results.
          const n = rows * C;
          const at = { x: 68, y: 68 + 4 * n, out: 68 + 8 * n, abe: 68 + 8 * n + 8 * C };
          const results = at.abe + 12 * C;
          const heap = new Float32Array(memory.buffer);
          const x = random.fillNormal(new Float32Array(n));
          const y = random.fillNormal(new Float32Array(n));
          const abe = random.fillNormal(new Float32Array(3 * C));
          heap.set(x, at.x / 4);
          heap.set(y, at.y / 4);
          heap.set(abe, at.abe / 4);
          const want = expected(x, y, abe, rows, C);
          const view = (byte: number, length: number) => new Float32Array(memory.buffer, byte, length);
          kernels.sums(at.x, rows, at.out);
          expect(worst(view(at.out, 2 * C), want.sums)).toBeLessThan(1e-5);
          kernels.sums2(at.y, at.x, rows, at.out);
          expect(worst(view(at.out, 2 * C), want.sums2)).toBeLessThan(1e-5);
          kernels.affine(at.x, results, rows, at.abe);
          expect(worst(view(results, n), want.affine)).toBeLessThan(1e-6);
          kernels.affine2(at.y, at.x, results, rows, at.abe);
          expect(worst(view(results, n), want.affine2)).toBeLessThan(1e-6);
          // Inputs untouched.
          expect(Array.from(view(at.x, n))).toEqual(Array.from(x));
        }
      }
    });
  }

  it('has no kernels for channel counts that are not multiples of 4', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    for (const C of [1, 6, 10, 0]) expect(groupNormSimd(C, memory)).toBeUndefined();
  });
});
