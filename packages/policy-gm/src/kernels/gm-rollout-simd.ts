import { assembleModule, F32, FunctionBody, I32, Op, Simd, V128 } from '@piflow/core/wasm';
import { COEFFICIENTS_PER_STEP, type GMRolloutArrays, type GMRolloutPlan } from './gm-rollout-plan';

/**
 * The fused GM rollout as a WebAssembly SIMD kernel generated at run time for the given K and C (loops over
 * components and channels fully unrolled). Four positions share one v128: positions are repacked into
 * groups of 4 lanes, per batch item (padding lanes hold zeros and are discarded), so every operation is
 * lane-wise and the softmax needs no horizontal reductions. The algorithm is the O(K²)-per-substep
 * reformulation of gm-rollout-plan.ts.
 *
 * Record of one group of 4 positions, in v128 units (4 lanes each):
 *   MU[K·C] (μ_kc), X[C] (x at the start; the result is written back here), XS[C] (x_src),
 *   LOGW[K], MXS[K] (μ_k·x_src), NRM[K] (|μ_k|²), G[K·K] (μ_k·μ_l), Y[K] (μ_k·x), GAM[K] (γ_k).
 * Exports: prepare(record, groups), steps(record, groups, coefficients, substeps), finish(record, groups, a, b).
 */

/** Largest unrolled instruction count (per function) we generate; bigger problems use the JS kernel. */
const MAX_UNROLLED = 20_000;

export interface Layout {
  K: number;
  C: number;
  MU: number;
  X: number;
  XS: number;
  LOGW: number;
  MXS: number;
  NRM: number;
  G: number;
  Y: number;
  GAM: number;
  /** Bytes per group record. */
  bytes: number;
}

export function layout(K: number, C: number): Layout {
  let at = 0;
  const take = (n: number) => {
    const start = at;
    at += n;
    return start;
  };
  const MU = take(K * C);
  const X = take(C);
  const XS = take(C);
  const LOGW = take(K);
  const MXS = take(K);
  const NRM = take(K);
  const G = take(K * K);
  const Y = take(K);
  const GAM = take(K);
  return { K, C, MU, X, XS, LOGW, MXS, NRM, G, Y, GAM, bytes: at * 16 };
}

/** Emits: for (g = 0; g < groups; g++, base += recordBytes) { body } with params (record, groups, ...). */
function groupLoop(f: FunctionBody, L: Layout, body: (base: number) => void, stride = 1): void {
  const base = f.local(I32);
  const g = f.local(I32);
  f.get(0).set(base).i32(0).set(g);
  f.op(Op.block, 0x40, Op.loop, 0x40);
  f.get(g).get(1).op(Op.i32GeU, Op.brIf, 1);
  body(base);
  f.get(base)
    .i32(L.bytes * stride)
    .op(Op.i32Add)
    .set(base);
  f.get(g).i32(stride).op(Op.i32Add).set(g);
  f.op(Op.br, 0, Op.end, Op.end);
}

/** Emits a pairwise (tree) reduction of the given locals with `op`, leaving the result on the stack. */
function emitTree(f: FunctionBody, locals: number[], op: number, scratch: number[]): void {
  if (locals.length === 1) {
    f.get(locals[0]!);
    return;
  }
  // reduce pairs into scratch locals until one remains
  let level = locals;
  let s = 0;
  while (level.length > 1) {
    const next: number[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) {
      const target = scratch[s++]!;
      f.get(level[i]!)
        .get(level[i + 1]!)
        .simd(op)
        .set(target);
      next.push(target);
    }
    if (level.length % 2) next.push(level[level.length - 1]!);
    level = next;
  }
  f.get(level[0]!);
}

function v(offsetVectors: number): number {
  return offsetVectors * 16;
}

/** prepare(record, groups): Gram matrix, μ·x_src, |μ|², μ·x, γ = 0. */
function prepareFunction(L: Layout): FunctionBody {
  const { K, C } = L;
  const f = new FunctionBody([I32, I32]);
  const acc = f.local(V128);
  const acc2 = f.local(V128);
  groupLoop(f, L, (base) => {
    for (let k = 0; k < K; k++) {
      for (let l = k; l < K; l++) {
        f.f32x4(0).set(acc);
        for (let c = 0; c < C; c++) {
          f.get(acc);
          f.get(base).load128(v(L.MU + k * C + c));
          f.get(base).load128(v(L.MU + l * C + c));
          f.simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(acc);
        }
        f.get(base)
          .get(acc)
          .store128(v(L.G + k * K + l));
        if (l !== k)
          f.get(base)
            .get(acc)
            .store128(v(L.G + l * K + k));
        else
          f.get(base)
            .get(acc)
            .store128(v(L.NRM + k));
      }
      f.f32x4(0).set(acc).f32x4(0).set(acc2);
      for (let c = 0; c < C; c++) {
        f.get(acc);
        f.get(base).load128(v(L.MU + k * C + c));
        f.get(base).load128(v(L.X + c));
        f.simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(acc);
        f.get(acc2);
        f.get(base).load128(v(L.MU + k * C + c));
        f.get(base).load128(v(L.XS + c));
        f.simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(acc2);
      }
      f.get(base)
        .get(acc)
        .store128(v(L.Y + k));
      f.get(base)
        .get(acc2)
        .store128(v(L.MXS + k));
      f.get(base)
        .f32x4(0)
        .store128(v(L.GAM + k));
    }
  });
  return f;
}

const EXP_CUTOFF = -60; // e^-60 ≈ 9e-27: below it a weight is set to exactly 0 (and denormals never appear)

/**
 * Emits exp(z) for z ≤ 0 held in local `z` (result on the stack): 2^n·p(f), n = round(z·log2 e),
 * f = z − n·ln 2 ∈ [−0.35, 0.35], p the degree-6 Taylor polynomial (relative error ≤ 1.3e-7);
 * lanes with z < −60 (including −Infinity) give exactly 0.
 */
function emitExp(f: FunctionBody, z: number, n: number, r: number): void {
  f.get(z).f32x4(EXP_CUTOFF).simd(Simd.f32x4Max).set(r); // r = clamped z
  f.get(r).f32x4(Math.LOG2E).simd(Simd.f32x4Mul).simd(Simd.f32x4Nearest).set(n);
  f.get(r).get(n).f32x4(Math.LN2).simd(Simd.f32x4Mul).simd(Simd.f32x4Sub).set(r); // r = f
  f.f32x4(1 / 720);
  for (const c of [1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1]) {
    f.get(r).simd(Simd.f32x4Mul).f32x4(c).simd(Simd.f32x4Add);
  }
  f.get(n).simd(Simd.i32x4TruncSatF32x4S).i32x4(127).simd(Simd.i32x4Add).i32(23).simd(Simd.i32x4Shl);
  f.simd(Simd.f32x4Mul);
  f.get(z).f32x4(EXP_CUTOFF).simd(Simd.f32x4Gt).simd(Simd.v128And);
}

/**
 * Emits the substep loop of steps(record, groups, coefficients, substeps): for each of `substeps` (param 3)
 * substeps, the plan's coefficients c1, c2, c3, P, R, Q (from param 2 on) splatted into `coefficients`, then
 * `body`.
 */
function substepLoop(f: FunctionBody, coefficients: readonly number[], body: () => void): void {
  const cp = f.local(I32);
  const j = f.local(I32);
  f.get(2).set(cp).i32(0).set(j);
  f.op(Op.block, 0x40, Op.loop, 0x40);
  f.get(j).get(3).op(Op.i32GeU, Op.brIf, 1);
  coefficients.forEach((local, i) => {
    f.get(cp)
      .loadF32(i * 4)
      .simd(Simd.f32x4Splat)
      .set(local);
  });
  body();
  f.get(cp)
    .i32(COEFFICIENTS_PER_STEP * 4)
    .op(Op.i32Add)
    .set(cp);
  f.get(j).i32(1).op(Op.i32Add).set(j);
  f.op(Op.br, 0, Op.end, Op.end);
}

/** Groups processed together in the substep loop: independent chains the CPU can overlap. */
export const INTERLEAVE = 1;

/**
 * steps(record, groups, coefficients, substeps): the substep loop for INTERLEAVE groups at a time (groups
 * must be a multiple of it), state (Y, GAM) in locals; max and sum as pairwise trees to shorten the
 * dependency chain of a substep.
 */
function stepsFunction(L: Layout): FunctionBody {
  const { K } = L;
  const U = INTERLEAVE;
  const f = new FunctionBody([I32, I32, I32, I32]);
  const vectors = (n: number) => Array.from({ length: n }, () => f.local(V128));
  const y = Array.from({ length: U }, () => vectors(K));
  const gam = Array.from({ length: U }, () => vectors(K));
  const e = Array.from({ length: U }, () => vectors(K));
  const scratch = Array.from({ length: U }, () => vectors(K));
  const [c1, c2, c3, P, R, Q] = vectors(COEFFICIENTS_PER_STEP) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const max = vectors(U);
  const sum = vectors(U);
  const z = vectors(U);
  const n = vectors(U);
  const r = vectors(U);
  groupLoop(
    f,
    L,
    (base) => {
      const at = (u: number, offsetVectors: number) => u * L.bytes + v(offsetVectors);
      for (let u = 0; u < U; u++) {
        for (let k = 0; k < K; k++) {
          f.get(base)
            .load128(at(u, L.Y + k))
            .set(y[u]![k]!);
          f.get(base)
            .load128(at(u, L.GAM + k))
            .set(gam[u]![k]!);
        }
      }
      substepLoop(f, [c1, c2, c3, P, R, Q], () => {
        // logits
        for (let k = 0; k < K; k++) {
          for (let u = 0; u < U; u++) {
            f.get(base).load128(at(u, L.LOGW + k));
            f.get(c1).get(y[u]![k]!).simd(Simd.f32x4Mul).simd(Simd.f32x4Add);
            f.get(c2)
              .get(base)
              .load128(at(u, L.MXS + k))
              .simd(Simd.f32x4Mul)
              .simd(Simd.f32x4Sub);
            f.get(c3)
              .get(base)
              .load128(at(u, L.NRM + k))
              .simd(Simd.f32x4Mul)
              .simd(Simd.f32x4Sub);
            f.set(e[u]![k]!);
          }
        }
        for (let u = 0; u < U; u++) {
          emitTree(f, e[u]!, Simd.f32x4Max, scratch[u]!);
          f.set(max[u]!);
        }
        // unnormalised weights
        for (let k = 0; k < K; k++) {
          for (let u = 0; u < U; u++) {
            f.get(e[u]![k]!).get(max[u]!).simd(Simd.f32x4Sub).set(z[u]!);
            emitExp(f, z[u]!, n[u]!, r[u]!);
            f.set(e[u]![k]!);
          }
        }
        // e ← Q·p = e·(Q/sum); γ ← P·γ + e
        for (let u = 0; u < U; u++) {
          emitTree(f, e[u]!, Simd.f32x4Add, scratch[u]!);
          f.set(sum[u]!);
          f.get(Q).get(sum[u]!).simd(Simd.f32x4Div).set(sum[u]!);
        }
        for (let k = 0; k < K; k++) {
          for (let u = 0; u < U; u++) {
            f.get(e[u]![k]!).get(sum[u]!).simd(Simd.f32x4Mul).set(e[u]![k]!);
            f.get(P).get(gam[u]![k]!).simd(Simd.f32x4Mul).get(e[u]![k]!).simd(Simd.f32x4Add).set(gam[u]![k]!);
          }
        }
        // y ← P·y + R·(μ·x_src) + G·e, as two partial sums per row
        for (let l = 0; l < K; l++) {
          for (let u = 0; u < U; u++) {
            const half = Math.ceil(K / 2);
            f.get(P).get(y[u]![l]!).simd(Simd.f32x4Mul);
            for (let k = 0; k < half; k++) {
              f.get(base)
                .load128(at(u, L.G + l * K + k))
                .get(e[u]![k]!)
                .simd(Simd.f32x4Mul)
                .simd(Simd.f32x4Add);
            }
            f.get(R)
              .get(base)
              .load128(at(u, L.MXS + l))
              .simd(Simd.f32x4Mul);
            for (let k = half; k < K; k++) {
              f.get(base)
                .load128(at(u, L.G + l * K + k))
                .get(e[u]![k]!)
                .simd(Simd.f32x4Mul)
                .simd(Simd.f32x4Add);
            }
            f.simd(Simd.f32x4Add).set(y[u]![l]!);
          }
        }
      });
      for (let u = 0; u < U; u++) {
        for (let k = 0; k < K; k++) {
          f.get(base)
            .get(y[u]![k]!)
            .store128(at(u, L.Y + k));
          f.get(base)
            .get(gam[u]![k]!)
            .store128(at(u, L.GAM + k));
        }
      }
    },
    U,
  );
  return f;
}

/**
 * steps(record, groups, coefficients, substeps) for one channel (C = 1, e.g. a GM policy per pixel of a grey
 * image). There G·e = μ·(Σ_k μ_k e_k), so the K×K product is not needed: the state is x itself (one v128 per
 * group), the logits are logw_k + μ_k·(c1·x − c2·x_src) − c3·μ_k², and one substep is
 * x ← P·x + R·x_src + Q·Σ_k p_k μ_k (gm-rollout-plan.ts). About 32K + 10 instructions per substep against the
 * Gram form's 2K² + 37K + 5. The result is written to X (γ is not used: finish is not needed).
 */
function stepsOneChannelFunction(L: Layout): FunctionBody {
  const { K } = L;
  const f = new FunctionBody([I32, I32, I32, I32]);
  const vectors = (count: number) => Array.from({ length: count }, () => f.local(V128));
  const mu = vectors(K);
  const logw = vectors(K);
  const nrm = vectors(K);
  const e = vectors(K);
  const scratch = vectors(K);
  const [c1, c2, c3, P, R, Q] = vectors(COEFFICIENTS_PER_STEP) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const [x, xs, w, max, sum, z, n, r] = vectors(8) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  groupLoop(f, L, (base) => {
    for (let k = 0; k < K; k++) {
      f.get(base)
        .load128(v(L.MU + k))
        .set(mu[k]!);
      f.get(base)
        .load128(v(L.LOGW + k))
        .set(logw[k]!);
      f.get(base)
        .load128(v(L.NRM + k))
        .set(nrm[k]!);
    }
    f.get(base).load128(v(L.X)).set(x);
    f.get(base).load128(v(L.XS)).set(xs);
    substepLoop(f, [c1, c2, c3, P, R, Q], () => {
      // w = c1·x − c2·x_src; logit_k = logw_k + μ_k·w − c3·|μ_k|²
      f.get(c1).get(x).simd(Simd.f32x4Mul).get(c2).get(xs).simd(Simd.f32x4Mul).simd(Simd.f32x4Sub).set(w);
      for (let k = 0; k < K; k++) {
        f.get(logw[k]!).get(mu[k]!).get(w).simd(Simd.f32x4Mul).simd(Simd.f32x4Add);
        f.get(c3).get(nrm[k]!).simd(Simd.f32x4Mul).simd(Simd.f32x4Sub).set(e[k]!);
      }
      emitTree(f, e, Simd.f32x4Max, scratch);
      f.set(max);
      for (let k = 0; k < K; k++) {
        f.get(e[k]!).get(max).simd(Simd.f32x4Sub).set(z);
        emitExp(f, z, n, r);
        f.set(e[k]!);
      }
      emitTree(f, e, Simd.f32x4Add, scratch);
      f.set(sum);
      // m = Σ_k e_k μ_k (two partial sums); x ← P·x + R·x_src + (Q/sum)·m
      const half = Math.ceil(K / 2);
      const partial = (from: number, to: number) => {
        f.get(e[from]!).get(mu[from]!).simd(Simd.f32x4Mul);
        for (let k = from + 1; k < to; k++) {
          f.get(e[k]!).get(mu[k]!).simd(Simd.f32x4Mul).simd(Simd.f32x4Add);
        }
      };
      partial(0, half);
      if (half < K) {
        partial(half, K);
        f.simd(Simd.f32x4Add);
      }
      f.get(Q).get(sum).simd(Simd.f32x4Div).simd(Simd.f32x4Mul);
      f.get(P).get(x).simd(Simd.f32x4Mul).simd(Simd.f32x4Add);
      f.get(R).get(xs).simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(x);
    });
    f.get(base).get(x).store128(v(L.X));
  });
  return f;
}

/** finish(record, groups, a, b): X ← a·X + b·XS + Σ_k γ_k μ_k. */
function finishFunction(L: Layout): FunctionBody {
  const { K, C } = L;
  const f = new FunctionBody([I32, I32, F32, F32]);
  const a = f.local(V128);
  const b = f.local(V128);
  f.get(2).simd(Simd.f32x4Splat).set(a);
  f.get(3).simd(Simd.f32x4Splat).set(b);
  const gam = Array.from({ length: K }, () => f.local(V128));
  groupLoop(f, L, (base) => {
    for (let k = 0; k < K; k++)
      f.get(base)
        .load128(v(L.GAM + k))
        .set(gam[k]!);
    for (let c = 0; c < C; c++) {
      f.get(base); // store address
      f.get(a)
        .get(base)
        .load128(v(L.X + c))
        .simd(Simd.f32x4Mul);
      f.get(b)
        .get(base)
        .load128(v(L.XS + c))
        .simd(Simd.f32x4Mul)
        .simd(Simd.f32x4Add);
      for (let k = 0; k < K; k++) {
        f.get(gam[k]!)
          .get(base)
          .load128(v(L.MU + k * C + c))
          .simd(Simd.f32x4Mul)
          .simd(Simd.f32x4Add);
      }
      f.store128(v(L.X + c));
    }
  });
  return f;
}

interface Kernel {
  L: Layout;
  memory: WebAssembly.Memory;
  prepare: (record: number, groups: number) => void;
  steps: (record: number, groups: number, coefficients: number, substeps: number) => void;
  finish: (record: number, groups: number, a: number, b: number) => void;
}

const kernels = new Map<string, Kernel | null | Promise<void>>();

/** Whether this JavaScript engine runs WebAssembly SIMD (checked once). */
let simdSupport: boolean | undefined;
export function wasmSimdSupported(): boolean {
  if (simdSupport === undefined) {
    try {
      const f = new FunctionBody([]);
      f.f32x4(1).simd(Simd.f32x4Nearest).op(0x1a); // drop
      simdSupport =
        typeof WebAssembly === 'object' && WebAssembly.validate(assembleModule([{ name: 'f', body: f }]));
    } catch {
      simdSupport = false;
    }
  }
  return simdSupport;
}

/** Generates the module's bytes for K components and C channels (exported for tests and inspection). */
export function generateGMRolloutModule(K: number, C: number): Uint8Array<ArrayBuffer> {
  const L = layout(K, C);
  return assembleModule([
    { name: 'prepare', body: prepareFunction(L) },
    { name: 'steps', body: C === 1 ? stepsOneChannelFunction(L) : stepsFunction(L) },
    { name: 'finish', body: finishFunction(L) },
  ]);
}

/** Whether the unrolled kernel for (K, C) stays within the code-size budget. */
export function simdKernelFits(K: number, C: number): boolean {
  const prepareOps = ((K * (K + 1)) / 2) * C + 2 * K * C;
  const stepOps = K * K + 40 * K;
  return prepareOps <= MAX_UNROLLED && stepOps <= MAX_UNROLLED && K * C <= MAX_UNROLLED;
}

function instantiate(K: number, C: number, module: WebAssembly.Module): Kernel {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const ex = instance.exports as Record<string, (...args: number[]) => void>;
  return {
    L: layout(K, C),
    memory,
    prepare: ex.prepare!,
    steps: ex.steps!,
    finish: ex.finish!,
  };
}

/**
 * The kernel for (K, C), compiled on first use. Synchronous compilation is used where allowed (Node, workers);
 * where the engine refuses it (browsers' main thread limits synchronous compiles to 4 KB), compilation
 * continues asynchronously and `undefined` is returned until it is ready (callers use the JS kernel).
 */
function kernelFor(K: number, C: number): Kernel | undefined {
  const key = `${K}x${C}`;
  const cached = kernels.get(key);
  if (cached === null) return undefined;
  if (cached && !(cached instanceof Promise)) return cached;
  if (cached instanceof Promise) return undefined;
  if (!wasmSimdSupported() || !simdKernelFits(K, C)) {
    kernels.set(key, null);
    return undefined;
  }
  const bytes = generateGMRolloutModule(K, C);
  try {
    const kernel = instantiate(K, C, new WebAssembly.Module(bytes));
    kernels.set(key, kernel);
    return kernel;
  } catch {
    kernels.set(
      key,
      WebAssembly.compile(bytes).then(
        (module) => void kernels.set(key, instantiate(K, C, module)),
        () => void kernels.set(key, null),
      ),
    );
    return undefined;
  }
}

/** Calls of `steps` cover at most this many groups, so V8's tier-up (per call) reaches long rollouts early. */
const GROUPS_PER_CALL = 8 * INTERLEAVE;

/**
 * Runs the fused GM rollout with the SIMD kernel; returns undefined where WebAssembly SIMD is unavailable,
 * the kernel would be too large, or it is still compiling.
 */
export function gmRolloutSimd(arrays: GMRolloutArrays, plan: GMRolloutPlan): Float32Array | undefined {
  const { batch: B, positions: P, components: K, channels: C, x, xSrc, means, logweights } = arrays;
  const kernel = kernelFor(K, C);
  if (!kernel) return undefined;
  const { L, memory } = kernel;
  const groupsPerItem = Math.ceil(Math.ceil(P / 4) / INTERLEAVE) * INTERLEAVE;
  const maxSteps = plan.steps.reduce((m, s) => Math.max(m, s), 0);
  const coefficientBytes = maxSteps * COEFFICIENTS_PER_STEP * 4;
  const recordBytes = groupsPerItem * L.bytes;
  const needed = coefficientBytes + recordBytes + 16;
  if (memory.buffer.byteLength < needed) {
    memory.grow(Math.ceil((needed - memory.buffer.byteLength) / 65536));
  }
  const heap = new Float32Array(memory.buffer);
  const recordAt = 0; // records first (16-byte aligned), coefficients after them
  const coefficientsAt = recordBytes;
  const floatsPerRecord = L.bytes / 4;
  const out = new Float32Array(B * P * C);
  for (let item = 0; item < B; item++) {
    // repack this item's positions into lane-interleaved groups of 4
    heap.fill(0, 0, recordBytes / 4);
    for (let p = 0; p < P; p++) {
      const g = p >> 2;
      const lane = p & 3;
      const rec = g * floatsPerRecord + lane;
      const pos = item * P + p;
      const mu = pos * K * C;
      for (let i = 0; i < K * C; i++) heap[rec + (L.MU + i) * 4] = means[mu + i]!;
      for (let c = 0; c < C; c++) {
        heap[rec + (L.X + c) * 4] = x[pos * C + c]!;
        heap[rec + (L.XS + c) * 4] = xSrc[pos * C + c]!;
      }
      for (let k = 0; k < K; k++) heap[rec + (L.LOGW + k) * 4] = logweights[pos * K + k]!;
    }
    const n = plan.steps[item]!;
    heap.set(plan.coefficients[item]!, coefficientsAt / 4);
    kernel.prepare(recordAt, groupsPerItem);
    for (let g = 0; g < groupsPerItem; g += GROUPS_PER_CALL) {
      kernel.steps(recordAt + g * L.bytes, Math.min(GROUPS_PER_CALL, groupsPerItem - g), coefficientsAt, n);
    }
    // With one channel the substeps update x itself, in place: nothing to rebuild.
    if (C !== 1) kernel.finish(recordAt, groupsPerItem, plan.a[item]!, plan.b[item]!);
    for (let p = 0; p < P; p++) {
      const rec = (p >> 2) * floatsPerRecord + (p & 3);
      const o = (item * P + p) * C;
      for (let c = 0; c < C; c++) out[o + c] = heap[rec + (L.X + c) * 4]!;
    }
  }
  return out;
}
