import { assembleModule, FunctionBody, I32, Simd, V128 } from '@piflow/core/wasm';

/**
 * GroupNorm's passes over channels-last data as WebAssembly SIMD functions, generated for one channel count
 * C (a multiple of 4; the channel loop is unrolled into C/4 four-lane vectors) and run directly in tfjs's
 * wasm heap (the module imports the backend's memory, so nothing is copied). Pointers are byte offsets in
 * that memory; `rows` counts positions of C floats.
 *
 * - sums(x, rows, out): out[0..C) = Σ x, out[C..2C) = Σ x² per channel (float32 sums; callers keep blocks
 *   short and add the blocks in float64).
 * - affine(x, y, rows, ab): y = x·a + b per channel, with a = ab[0..C), b = ab[C..2C).
 * - sums2(dy, x, rows, out): out[0..C) = Σ dy, out[C..2C) = Σ dy·x.
 * - affine2(dy, x, dx, rows, abe): dx = a·dy + b·x + e, with a, b, e = abe[0..C), [C..2C), [2C..3C).
 */
export interface GroupNormSimd {
  sums(x: number, rows: number, out: number): void;
  affine(x: number, y: number, rows: number, ab: number): void;
  sums2(dy: number, x: number, rows: number, out: number): void;
  affine2(dy: number, x: number, dx: number, rows: number, abe: number): void;
}

/** Emits: for (r = 0; r < rows; r++) { body(); each pointer += C·4 }, rows being parameter `rowsParam`. */
function rowLoop(f: FunctionBody, rowsParam: number, pointers: number[], C: number, body: () => void): void {
  f.countedLoop(rowsParam, body, { pointers: pointers.map((p) => [p, C * 4] as const) });
}

/** sums (two = false) or sums2 (two = true): per-channel Σ a and Σ a·b (b = a for sums). */
function sumsFunction(C: number, two: boolean): FunctionBody {
  const V = C / 4;
  const f = new FunctionBody(two ? [I32, I32, I32, I32] : [I32, I32, I32]);
  const [a, b, rows, out] = two ? [0, 1, 2, 3] : [0, 0, 1, 2];
  const first = Array.from({ length: V }, () => f.local(V128));
  const second = Array.from({ length: V }, () => f.local(V128));
  const value = f.local(V128);
  for (let v = 0; v < V; v++) {
    f.f32x4(0).set(first[v]!);
    f.f32x4(0).set(second[v]!);
  }
  rowLoop(f, rows, two ? [a, b] : [a], C, () => {
    for (let v = 0; v < V; v++) {
      f.get(a)
        .load128(16 * v)
        .set(value);
      f.get(first[v]!).get(value).simd(Simd.f32x4Add).set(first[v]!);
      f.get(second[v]!).get(value);
      if (two) f.get(b).load128(16 * v);
      else f.get(value);
      f.simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(second[v]!);
    }
  });
  for (let v = 0; v < V; v++) {
    f.get(out)
      .get(first[v]!)
      .store128(16 * v);
    f.get(out)
      .get(second[v]!)
      .store128(16 * (V + v));
  }
  return f;
}

/** affine (terms = 2: y = x·a + b) or affine2 (terms = 3: dx = a·dy + b·x + e). */
function affineFunction(C: number, terms: 2 | 3): FunctionBody {
  const V = C / 4;
  const f = new FunctionBody(terms === 2 ? [I32, I32, I32, I32] : [I32, I32, I32, I32, I32]);
  // affine(x, y, rows, ab) / affine2(dy, x, dx, rows, abe)
  const [first, second, out, rows, coefficients] = terms === 2 ? [0, -1, 1, 2, 3] : [0, 1, 2, 3, 4];
  const coefficient = Array.from({ length: terms * V }, () => f.local(V128));
  for (let i = 0; i < terms * V; i++)
    f.get(coefficients)
      .load128(16 * i)
      .set(coefficient[i]!);
  const pointers = terms === 2 ? [first, out] : [first, second, out];
  rowLoop(f, rows, pointers, C, () => {
    for (let v = 0; v < V; v++) {
      f.get(out);
      f.get(first)
        .load128(16 * v)
        .get(coefficient[v]!)
        .simd(Simd.f32x4Mul);
      if (terms === 2) {
        f.get(coefficient[V + v]!).simd(Simd.f32x4Add);
      } else {
        f.get(second)
          .load128(16 * v)
          .get(coefficient[V + v]!)
          .simd(Simd.f32x4Mul)
          .simd(Simd.f32x4Add);
        f.get(coefficient[2 * V + v]!).simd(Simd.f32x4Add);
      }
      f.store128(16 * v);
    }
  });
  return f;
}

const compiled = new Map<string, WebAssembly.Module | 'compiling' | 'unsupported'>();
const instances = new WeakMap<WebAssembly.Memory, Map<string, GroupNormSimd>>();

/**
 * The kernels for C channels working in `memory` (tfjs's wasm heap; shared when tfjs runs threads), or
 * undefined when C is not a multiple of 4, the JS engine has no wasm SIMD, or the module is still compiling
 * (browsers refuse synchronous compiles of larger modules on the main thread; it is then compiled in the
 * background for later calls): the JS loops run then.
 */
export function groupNormSimd(C: number, memory: WebAssembly.Memory): GroupNormSimd | undefined {
  if (C % 4 !== 0 || C <= 0) return undefined;
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const key = `${C}/${shared}`;
  let byMemory = instances.get(memory);
  const existing = byMemory?.get(key);
  if (existing) return existing;
  let module = compiled.get(key);
  if (module === 'compiling' || module === 'unsupported') return undefined;
  if (module === undefined) {
    const bytes = assembleModule(
      [
        { name: 'sums', body: sumsFunction(C, false) },
        { name: 'affine', body: affineFunction(C, 2) },
        { name: 'sums2', body: sumsFunction(C, true) },
        { name: 'affine2', body: affineFunction(C, 3) },
      ],
      { sharedMemory: shared },
    );
    if (!WebAssembly.validate(bytes)) {
      compiled.set(key, 'unsupported');
      return undefined;
    }
    try {
      module = new WebAssembly.Module(bytes);
    } catch {
      compiled.set(key, 'compiling');
      WebAssembly.compile(bytes).then(
        (m) => void compiled.set(key, m),
        () => void compiled.delete(key),
      );
      return undefined;
    }
    compiled.set(key, module);
  }
  const kernels = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as GroupNormSimd;
  if (!byMemory) {
    byMemory = new Map();
    instances.set(memory, byMemory);
  }
  byMemory.set(key, kernels);
  return kernels;
}
