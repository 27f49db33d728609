import { describe, expect, it } from 'vitest';
import { type ConvShape, convFilterGradSimd } from './wasm-conv-filter-grad';

/** x, dy and dW laid out in a fresh memory, dy's and dW's offsets deliberately not 16-byte aligned. */
function setup(s: ConvShape, N: number, shared = false) {
  const xs = N * s.H * s.W * s.C;
  const ys = N * s.Ho * s.Wo * s.Co;
  const ws = s.kh * s.kw * s.C * s.Co;
  const x = 256;
  const dy = x + xs * 4 + 8;
  const dw = dy + ys * 4 + 40;
  const scratch = dw + ws * 4 + 4;
  const bytes = scratch + 4 * (ws * 4 + 128);
  const pages = Math.ceil(bytes / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, ...(shared ? { shared } : {}) });
  const heap = new Float32Array(memory.buffer);
  // values with a sign pattern no tap shift or channel swap preserves
  for (let i = 0; i < xs; i++) heap[x / 4 + i] = Math.sin(1.3 * i + 0.2);
  for (let i = 0; i < ys; i++) heap[dy / 4 + i] = Math.cos(0.7 * i) * (1 + (i % 5));
  return { memory, heap, x, dy, dw, scratch, xs, ys, ws };
}

/** dW by direct float64 loops over the definition. */
function reference(s: ConvShape, N: number, heap: Float32Array, x: number, dy: number): Float64Array {
  const out = new Float64Array(s.kh * s.kw * s.C * s.Co);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < s.Ho; i++)
      for (let j = 0; j < s.Wo; j++)
        for (let p = 0; p < s.kh; p++)
          for (let q = 0; q < s.kw; q++) {
            const r = i + p - s.top;
            const c0 = j + q - s.left;
            if (r < 0 || r >= s.H || c0 < 0 || c0 >= s.W) continue;
            for (let c = 0; c < s.C; c++) {
              const xv = heap[x / 4 + ((n * s.H + r) * s.W + c0) * s.C + c]!;
              for (let o = 0; o < s.Co; o++) {
                const g = heap[dy / 4 + ((n * s.Ho + i) * s.Wo + j) * s.Co + o]!;
                out[((p * s.kw + q) * s.C + c) * s.Co + o]! += xv * g;
              }
            }
          }
  return out;
}

const conv = (H: number, W: number, C: number, Co: number, k: [number, number], pad: [number, number]) => {
  const [kh, kw] = k;
  const [top, left] = pad;
  return { H, W, C, Co, kh, kw, top, left, Ho: H + 2 * top - kh + 1, Wo: W + 2 * left - kw + 1 };
};

describe('SIMD conv filter gradient (wasm)', () => {
  const cases: [string, ConvShape, number][] = [
    ['3×3 same, 4 × 8 tiles, two channel blocks', conv(6, 7, 8, 16, [3, 3], [1, 1]), 3],
    ['3×3 valid, one input channel (1 × 8 vectors)', conv(9, 5, 1, 32, [3, 3], [0, 0]), 2],
    ['5×3, padding 2/1, 2 × 12 tiles', conv(5, 6, 6, 12, [5, 3], [2, 1]), 2],
    ['1×1 over long rows (odd width)', conv(3, 37, 12, 8, [1, 1], [0, 0]), 2],
    ['2×2 valid, 3 input channels, 4 output channels', conv(4, 5, 3, 4, [2, 2], [0, 0]), 4],
    ['filter wider than the input with padding', conv(3, 2, 4, 8, [3, 5], [1, 2]), 2],
  ];
  for (const [name, s, N] of cases) {
    it(`${name}: matches float64 loops`, () => {
      const { heap, memory, x, dy, dw, ws } = setup(s, N);
      heap.fill(Number.NaN, dw / 4, dw / 4 + ws); // the caller zeroes dW: the kernel must only add to it
      heap.fill(0, dw / 4, dw / 4 + ws);
      heap[dw / 4 + ws] = 12345; // just past dW: must stay
      expect(convFilterGradSimd(memory, s, N, { x, dy, dw })).toBe(true);
      const want = reference(s, N, heap, x, dy);
      const scale = Math.max(...want.map(Math.abs));
      for (let i = 0; i < ws; i++) expect(Math.abs(heap[dw / 4 + i]! - want[i]!)).toBeLessThan(2e-6 * scale);
      expect(heap[dw / 4 + ws]).toBe(12345);
    });
  }

  it('adds to what dW holds (the caller zeroes it)', () => {
    const s = conv(4, 4, 4, 8, [3, 3], [1, 1]);
    const { heap, memory, x, dy, dw, ws } = setup(s, 2);
    heap.fill(1, dw / 4, dw / 4 + ws);
    convFilterGradSimd(memory, s, 2, { x, dy, dw });
    const want = reference(s, 2, heap, x, dy);
    for (let i = 0; i < ws; i++) expect(heap[dw / 4 + i]).toBeCloseTo(want[i]! + 1, 4);
  });

  it('declines output channels that are not a multiple of 4 (the caller takes another path)', () => {
    const s = conv(4, 4, 4, 6, [3, 3], [1, 1]);
    const { memory, x, dy, dw } = setup(s, 1);
    expect(convFilterGradSimd(memory, s, 1, { x, dy, dw })).toBe(false);
  });
});
