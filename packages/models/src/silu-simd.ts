import {
  assembleModule,
  FunctionBody,
  I32,
  Simd,
  V128,
  type WasmCall,
  wasmThreadPool,
} from '@piflow/core/wasm';

/**
 * SiLU's gradient as a WebAssembly SIMD pass run in tfjs's wasm heap (pointers are byte offsets there;
 * `vectors` counts groups of four floats), from the input x and the forward's σ(x):
 *
 * - siluGrad(x, s, dy, dx, vectors): dx = dy·s·(1 + x·(1 − s))
 */
export interface SiluSimd {
  siluGrad(x: number, s: number, dy: number, dx: number, vectors: number): void;
}

function siluGradFunction(): FunctionBody {
  const f = new FunctionBody([I32, I32, I32, I32, I32]);
  const [x, s, dy, dx, vectors] = [0, 1, 2, 3, 4];
  const sv = f.local(V128);
  f.countedLoop(
    vectors,
    () => {
      f.get(s).load128(0).set(sv);
      f.get(dx);
      f.get(dy).load128(0).get(sv).simd(Simd.f32x4Mul);
      f.f32x4(1)
        .get(x)
        .load128(0)
        .f32x4(1)
        .get(sv)
        .simd(Simd.f32x4Sub)
        .simd(Simd.f32x4Mul)
        .simd(Simd.f32x4Add);
      f.simd(Simd.f32x4Mul).store128(0);
    },
    {
      pointers: [
        [x, 16],
        [s, 16],
        [dy, 16],
        [dx, 16],
      ],
    },
  );
  return f;
}

const compiled = new Map<boolean, WebAssembly.Module | 'unsupported'>();
const instances = new WeakMap<WebAssembly.Memory, SiluSimd>();

function moduleFor(shared: boolean): WebAssembly.Module | undefined {
  let module = compiled.get(shared);
  if (module === undefined) {
    const bytes = assembleModule([{ name: 'siluGrad', body: siluGradFunction() }], { sharedMemory: shared });
    // a small module: browsers compile it synchronously on the main thread too
    module = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : 'unsupported';
    compiled.set(shared, module);
  }
  return module === 'unsupported' ? undefined : module;
}

/** Vectors below which one thread does the whole pass (the hand-over costs more than it saves). */
const MIN_VECTORS_PER_THREAD = 16384;

/**
 * The kernels working in `memory` (tfjs's wasm heap), or undefined without WebAssembly SIMD. In a shared
 * memory with a registered thread pool (@piflow/core/wasm), long passes are split over its threads.
 */
export function siluSimd(memory: WebAssembly.Memory): SiluSimd | undefined {
  const existing = instances.get(memory);
  if (existing) return existing;
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const module = moduleFor(shared);
  if (!module) return undefined;
  const local = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as SiluSimd;
  /** Runs `name` over `vectors` vectors, split over the pool's threads when that pays. */
  const split = (name: keyof SiluSimd, pointers: number[], vectors: number): boolean => {
    const pool = shared ? wasmThreadPool() : undefined;
    const threads = Math.min(pool?.threads ?? 1, Math.floor(vectors / MIN_VECTORS_PER_THREAD));
    if (!pool || threads < 2) return false;
    const tasks: WasmCall[][] = [];
    for (let t = 0; t < threads; t++) {
      const v0 = Math.floor((t * vectors) / threads);
      const v1 = Math.floor(((t + 1) * vectors) / threads);
      tasks.push([{ name, args: [...pointers.map((p) => p + 16 * v0), v1 - v0] }]);
    }
    pool.run(module, memory, tasks);
    return true;
  };
  const kernels: SiluSimd = {
    siluGrad(x, s, dy, dx, vectors) {
      if (!split('siluGrad', [x, s, dy, dx], vectors)) local.siluGrad(x, s, dy, dx, vectors);
    },
  };
  instances.set(memory, kernels);
  return kernels;
}
