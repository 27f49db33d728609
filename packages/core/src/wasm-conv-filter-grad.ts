import { assembleModule, FunctionBody, I32, Op, Simd, V128 } from './wasm-assembler';
import { runWasmCalls, type WasmCall, type WasmThreadPool, wasmThreadPool } from './wasm-thread-pool';

/**
 * The filter gradient of a stride-1, undilated channels-last 2-D convolution as a WebAssembly SIMD kernel
 * working in tfjs's wasm heap:
 *
 *   dW[p, q, c, o] += Σ_{n, i, j} x[n, i + p − top, j + q − left, c] · dy[n, i, j, o]
 *
 * (taps reading outside x read the zero padding and are skipped). For each tap it is a product xᵀ·dy whose
 * reduction runs over the output positions. The kernel holds a tile of MC input × 4·NO output channels of one
 * tap in registers (MC splatted x values times NO vectors of dy per position) while it walks a few output
 * rows of one image — few enough that their rows of x and dy stay in the L1 cache for every tap and tile —
 * the columns each tap reads being fixed when the module is generated (one module per convolution shape).
 * Threads split the output channels; each accumulates into its own cache-line-aligned copy of dW (threads
 * writing to one cache line slowed each other ~2×), gathered afterwards. Each dW element is summed in the
 * same order whatever the number of threads, so the results do not depend on it. A 1×1 convolution's is a
 * weight gradient aᵀ·b: the wasm BatchMatMul override (wasm-batch-mat-mul.ts) runs those here too.
 */
export interface ConvShape {
  /** Input rows, columns, channels. */
  H: number;
  W: number;
  C: number;
  /** Output rows, columns, channels. */
  Ho: number;
  Wo: number;
  Co: number;
  /** Filter rows and columns. */
  kh: number;
  kw: number;
  /** Padding before the first row and column. */
  top: number;
  left: number;
}

interface Tiling {
  /** Input channels per tile (splatted x values). */
  MC: number;
  /** Four-lane vectors of output channels per tile. */
  NO: number;
}

/** MC·NO accumulators: at most 8 (with the NO loaded dy vectors and a splat they fit x86's 16 registers). */
function tilingOf(C: number, Co: number): Tiling | undefined {
  if (Co % 4 !== 0) return undefined;
  const MC = C % 4 === 0 ? 4 : C % 2 === 0 ? 2 : 1;
  const vectors = Co / 4;
  let NO = Math.min(vectors, 8 / MC);
  while (vectors % NO !== 0) NO--;
  return { MC, NO };
}

/** Emits `for (k = 0; k < count; k++) { body(); p += stride … }` for a count known now (nothing if 0). */
function loopTimes(
  f: FunctionBody,
  count: number,
  body: () => void,
  pointers: ReadonlyArray<readonly [number, number]>,
): void {
  if (count <= 0) return;
  const limit = f.local(I32);
  f.i32(count).set(limit);
  f.countedLoop(limit, body, { pointers });
}

/** Columns (per output row) processed per pass of the innermost loop. */
const UNROLL = 2;

/** Emits `target = max(local, value)` (max = true) or `min(local, value)`, value known now (signed). */
function clamp(f: FunctionBody, target: number, local: number, value: number, max: boolean): void {
  f.get(local)
    .i32(value)
    .get(local)
    .i32(value)
    .op(max ? Op.i32GtS : Op.i32LtS, Op.select)
    .set(target);
}

/**
 * grad(x, dy, dw, n, r0, r1, ob0, ob1): adds the terms of image n's output rows [r0, r1) to dW's blocks
 * [ob0, ob1) of 4·NO output channels.
 */
function gradFunction(s: ConvShape, { MC, NO }: Tiling): FunctionBody {
  const { H, W, C, Ho, Wo, Co, kh, kw, top, left } = s;
  const f = new FunctionBody([I32, I32, I32, I32, I32, I32, I32, I32]);
  const [x, dy, dw, n, r0, r1, ob0, ob1] = [0, 1, 2, 3, 4, 5, 6, 7];
  const acc = Array.from({ length: MC * NO }, () => f.local(V128));
  const d = Array.from({ length: NO }, () => f.local(V128));
  const splat = f.local(V128);
  const i32 = () => f.local(I32);
  const [dyo, wo, lo, hi, rows, xt, dyt] = [i32(), i32(), i32(), i32(), i32(), i32(), i32()];
  const [xr, dyr, xp, dp, blocks] = [i32(), i32(), i32(), i32(), i32()];
  const C4 = C * 4;
  const Co4 = Co * 4;
  f.get(ob1).get(ob0).op(Op.i32Sub).set(blocks);
  // dyo / wo: dy at image n and block ob0, dW at block ob0
  f.get(dy)
    .get(n)
    .i32(Ho * Wo * Co4)
    .op(Op.i32Mul)
    .op(Op.i32Add);
  f.get(ob0)
    .i32(NO * 16)
    .op(Op.i32Mul)
    .op(Op.i32Add)
    .set(dyo);
  f.get(dw)
    .get(ob0)
    .i32(NO * 16)
    .op(Op.i32Mul)
    .op(Op.i32Add)
    .set(wo);
  // x at image n (kept in x)
  f.get(x)
    .get(n)
    .i32(H * W * C4)
    .op(Op.i32Mul)
    .op(Op.i32Add)
    .set(x);

  /** One column's products: offsets in bytes from xp / dp. */
  const column = (xOffset: number, dyOffset: number) => {
    for (let v = 0; v < NO; v++)
      f.get(dp)
        .load128(dyOffset + 16 * v)
        .set(d[v]!);
    for (let m = 0; m < MC; m++) {
      f.get(xp)
        .loadSplat32(xOffset + 4 * m)
        .set(splat);
      for (let v = 0; v < NO; v++) {
        const a = acc[m * NO + v]!;
        f.get(a).get(splat).get(d[v]!).simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(a);
      }
    }
  };
  /** The tile's accumulators from (load) or to (store) dW, at wo + wStart + cb·MC·Co·4. */
  const tile = (cb: number, wStart: number, store: boolean) => {
    f.get(wo)
      .get(cb)
      .i32(MC * Co4)
      .op(Op.i32Mul)
      .op(Op.i32Add)
      .set(xp);
    for (let m = 0; m < MC; m++)
      for (let v = 0; v < NO; v++) {
        const a = acc[m * NO + v]!;
        if (store)
          f.get(xp)
            .get(a)
            .store128(wStart + m * Co4 + 16 * v);
        else
          f.get(xp)
            .load128(wStart + m * Co4 + 16 * v)
            .set(a);
      }
  };

  // for each block of output channels (dy and dW move by NO vectors)
  f.countedLoop(
    blocks,
    () => {
      for (let p = 0; p < kh; p++) {
        // the output rows this filter row reads inside x: [max(r0, i0), min(r1, i1))
        const i0 = Math.max(0, top - p);
        const i1 = Math.min(Ho, H + top - p);
        clamp(f, lo, r0, i0, true);
        clamp(f, hi, r1, i1, false);
        // rows = max(hi − lo, 0)
        f.get(hi).get(lo).op(Op.i32Sub).set(rows);
        clamp(f, rows, rows, 0, true);
        for (let q = 0; q < kw; q++) {
          const j0 = Math.max(0, left - q);
          const j1 = Math.min(Wo, W + left - q);
          if (i1 <= i0 || j1 <= j0) continue;
          const J = j1 - j0;
          const wStart = (p * kw + q) * C * Co4;
          // xt / dyt: x and dy at (row lo, column j0) of this tap
          f.get(x)
            .get(lo)
            .i32(W * C4)
            .op(Op.i32Mul)
            .op(Op.i32Add)
            .i32(((p - top) * W + (j0 + q - left)) * C4)
            .op(Op.i32Add)
            .set(xt);
          f.get(dyo)
            .get(lo)
            .i32(Wo * Co4)
            .op(Op.i32Mul)
            .op(Op.i32Add)
            .i32(j0 * Co4)
            .op(Op.i32Add)
            .set(dyt);
          // for each block of MC input channels (x moves by MC channels, dW by MC rows)
          const cbLimit = f.local(I32);
          f.i32(C / MC).set(cbLimit);
          f.countedLoop(cbLimit, (cb) => {
            tile(cb, wStart, false);
            f.get(xt)
              .get(cb)
              .i32(MC * 4)
              .op(Op.i32Mul)
              .op(Op.i32Add)
              .set(xr);
            f.get(dyt).set(dyr);
            f.countedLoop(
              rows,
              () => {
                f.get(xr).set(xp);
                f.get(dyr).set(dp);
                loopTimes(
                  f,
                  Math.floor(J / UNROLL),
                  () => {
                    for (let u = 0; u < UNROLL; u++) column(u * C4, u * Co4);
                  },
                  [
                    [xp, UNROLL * C4],
                    [dp, UNROLL * Co4],
                  ],
                );
                for (let u = 0; u < J % UNROLL; u++) column(u * C4, u * Co4);
              },
              {
                pointers: [
                  [xr, W * C4],
                  [dyr, Wo * Co4],
                ],
              },
            );
            tile(cb, wStart, true);
          });
        }
      }
    },
    {
      pointers: [
        [dyo, NO * 16],
        [wo, NO * 16],
      ],
    },
  );
  return f;
}

interface Kernel {
  module: WebAssembly.Module;
  tiling: Tiling;
}

const compiled = new Map<string, Kernel | 'compiling' | 'unsupported'>();
const instances = new WeakMap<WebAssembly.Memory, Map<string, WebAssembly.Exports>>();

/** One module (and one instance per memory) per convolution shape and memory kind. */
function keyOf(s: ConvShape, shared: boolean): string {
  return `${Object.values(s).join(',')}/${shared}`;
}

function kernelFor(s: ConvShape, shared: boolean): Kernel | undefined {
  const tiling = tilingOf(s.C, s.Co);
  if (!tiling) return undefined;
  const key = keyOf(s, shared);
  const existing = compiled.get(key);
  if (existing === 'compiling' || existing === 'unsupported') return undefined;
  if (existing) return existing;
  const bytes = assembleModule([{ name: 'grad', body: gradFunction(s, tiling) }], { sharedMemory: shared });
  if (!WebAssembly.validate(bytes)) {
    compiled.set(key, 'unsupported');
    return undefined;
  }
  try {
    const kernel = { module: new WebAssembly.Module(bytes), tiling };
    compiled.set(key, kernel);
    return kernel;
  } catch {
    // Browsers refuse synchronous compiles of larger modules on the main thread: compile in the background.
    compiled.set(key, 'compiling');
    WebAssembly.compile(bytes).then(
      (module) => void compiled.set(key, { module, tiling }),
      () => void compiled.delete(key),
    );
    return undefined;
  }
}

/** Bytes of x and dy a call's rows read, at most (they stay in a 48 KiB L1 cache for all its passes). */
const BLOCK_BYTES = 40 * 1024;

/**
 * Adds the filter gradient of images [0, N) to dW (zeroed by the caller), the arrays being byte offsets in
 * `memory` (tfjs's heap); returns false (and does nothing) where the kernel does not apply — output channels
 * not a multiple of 4, no WebAssembly SIMD, the module still compiling — so that the caller takes another
 * path. With several threads, each accumulates its output channels in its own zeroed, cache-line-aligned
 * copy of dW inside `scratch` (`scratchBytes(…)` bytes; threads writing to one cache line would slow each
 * other several times), and `gather` copies those parts into dW afterwards.
 */
export function convFilterGradSimd(
  memory: WebAssembly.Memory,
  s: ConvShape,
  N: number,
  arrays: { x: number; dy: number; dw: number; scratch?: number },
): boolean {
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const kernel = kernelFor(s, shared);
  if (!kernel) return false;
  const blocks = s.Co / (4 * kernel.tiling.NO);
  const pool = usablePool(shared);
  const threads = arrays.scratch === undefined ? 1 : Math.min(pool?.threads ?? 1, blocks);
  const filterBytes = s.kh * s.kw * s.C * s.Co * 4;
  const slab = Math.ceil(filterBytes / CACHE_LINE) * CACHE_LINE;
  let target = (_t: number) => arrays.dw;
  if (threads > 1) {
    const scratch = Math.ceil(arrays.scratch! / CACHE_LINE) * CACHE_LINE;
    new Uint8Array(memory.buffer, scratch, threads * slab).fill(0);
    target = (t) => scratch + t * slab;
  }
  // output rows per call: r rows of dy and r + kh − 1 rows of x within BLOCK_BYTES
  const rowBytes = (s.W * s.C + s.Wo * s.Co) * 4;
  const rowsPerCall = Math.max(1, Math.min(s.Ho, Math.floor(BLOCK_BYTES / rowBytes) - (s.kh - 1)));
  const bounds = Array.from({ length: threads + 1 }, (_, t) => Math.floor((t * blocks) / threads));
  const tasks = bounds.slice(0, threads).map((ob0, t) => {
    const calls: WasmCall[] = [];
    for (let n = 0; n < N; n++) {
      for (let r = 0; r < s.Ho; r += rowsPerCall) {
        const r1 = Math.min(s.Ho, r + rowsPerCall);
        calls.push({ name: 'grad', args: [arrays.x, arrays.dy, target(t), n, r, r1, ob0, bounds[t + 1]!] });
      }
    }
    return calls;
  });
  if (threads > 1) {
    pool!.run(kernel.module, memory, tasks);
    // each thread's output channels, from its copy into dW
    const heap = new Float32Array(memory.buffer);
    const width = 4 * kernel.tiling.NO;
    const rows = filterBytes / 4 / s.Co;
    for (let t = 0; t < threads; t++) {
      const from = target(t) / 4;
      const to = arrays.dw / 4;
      const [o0, o1] = [bounds[t]! * width, bounds[t + 1]! * width];
      for (let r = 0; r < rows; r++) {
        heap.copyWithin(to + r * s.Co + o0, from + r * s.Co + o0, from + r * s.Co + o1);
      }
    }
  } else {
    runWasmCalls(instanceFor(kernel, memory, s, shared), tasks[0]!);
  }
  return true;
}

/** Bytes of scratch `convFilterGradSimd` needs for a filter of `filterFloats` floats (one copy per thread). */
function scratchBytes(filterFloats: number): number {
  const threads = usablePool(true)?.threads ?? 1;
  return threads > 1 ? threads * (Math.ceil((filterFloats * 4) / CACHE_LINE) + 1) * CACHE_LINE : 0;
}

interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

/** What the kernel needs of tfjs's wasm backend. */
export interface WasmHeapBackend {
  wasm?: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfoLike;
  typedArrayFromHeap(t: TensorInfoLike): { byteOffset: number; fill(value: number): unknown };
  disposeData(dataId: object): boolean;
}

/**
 * The filter gradient as a tensor of shape `outShape` (kh·kw·C·Co floats) on tfjs's wasm backend: x and dy
 * are float32 channels-last [N, H, W, C] and [N, Ho, Wo, Co] arrays in the heap. Undefined where the kernel
 * does not apply (see convFilterGradSimd); the caller then takes another path.
 */
export function convFilterGradOnWasm(
  backend: WasmHeapBackend,
  s: ConvShape,
  N: number,
  x: TensorInfoLike,
  dy: TensorInfoLike,
  outShape: number[],
): TensorInfoLike | undefined {
  const memory = backend.wasm?.wasmMemory ?? backend.wasm?.asm?.memory;
  if (!memory || x.dtype !== 'float32' || dy.dtype !== 'float32' || !tilingOf(s.C, s.Co)) return undefined;
  // views after the allocations (which may move the heap)
  const out = backend.makeOutput(outShape, 'float32');
  const bytes = scratchBytes(s.kh * s.kw * s.C * s.Co);
  const scratch = bytes > 0 ? backend.makeOutput([bytes / 4], 'float32') : undefined;
  const dw = backend.typedArrayFromHeap(out);
  dw.fill(0);
  const done = convFilterGradSimd(memory, s, N, {
    x: backend.typedArrayFromHeap(x).byteOffset,
    dy: backend.typedArrayFromHeap(dy).byteOffset,
    dw: dw.byteOffset,
    ...(scratch ? { scratch: backend.typedArrayFromHeap(scratch).byteOffset } : {}),
  });
  if (scratch) backend.disposeData(scratch.dataId);
  if (done) return out;
  backend.disposeData(out.dataId);
  return undefined;
}

const CACHE_LINE = 64;

function instanceFor(kernel: Kernel, memory: WebAssembly.Memory, s: ConvShape, shared: boolean) {
  const key = keyOf(s, shared);
  let byMemory = instances.get(memory);
  if (!byMemory) {
    byMemory = new Map();
    instances.set(memory, byMemory);
  }
  let exports = byMemory.get(key);
  if (!exports) {
    exports = new WebAssembly.Instance(kernel.module, { env: { memory } }).exports;
    byMemory.set(key, exports);
  }
  return exports;
}

function usablePool(shared: boolean): WasmThreadPool | undefined {
  const pool = wasmThreadPool();
  return shared && pool && pool.threads > 1 ? pool : undefined;
}
