import {
  assembleModule,
  F32,
  FunctionBody,
  I32,
  Op,
  Simd,
  splitByCost,
  V128,
  type WasmThreadPool,
  wasmThreadPool,
} from '@piflow/core/wasm';
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
 * Exports: prepare(record, groups), steps(record, groups, coefficients, substeps), finish(record, groups, a, b),
 * pack and unpack (between the raw arrays and the records), and run(units, count, means, x, xs, logw), which
 * calls them for each of `count` work units described in memory (UNIT_BYTES each): one call per thread's share.
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

/** Emits: for (g = 0; g < groups; g += stride, base += stride·recordBytes) { body } with params (record, groups, ...). */
function groupLoop(f: FunctionBody, L: Layout, body: (base: number) => void, stride = 1): void {
  const base = f.local(I32);
  f.get(0).set(base);
  f.countedLoop(1, () => body(base), { pointers: [[base, L.bytes * stride]], step: stride });
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

/** prepare(record, groups): Gram matrix (diagonal only with one channel: unused), μ·x_src, |μ|², μ·x, γ = 0. */
function prepareFunction(L: Layout): FunctionBody {
  const { K, C } = L;
  const f = new FunctionBody([I32, I32]);
  const acc = f.local(V128);
  const acc2 = f.local(V128);
  groupLoop(f, L, (base) => {
    for (let k = 0; k < K; k++) {
      for (let l = k; l < (C === 1 ? k + 1 : K); l++) {
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
  f.get(2).set(cp);
  f.countedLoop(
    3,
    () => {
      coefficients.forEach((local, i) => {
        f.get(cp)
          .loadF32(i * 4)
          .simd(Simd.f32x4Splat)
          .set(local);
      });
      body();
    },
    { pointers: [[cp, COEFFICIENTS_PER_STEP * 4]] },
  );
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

/**
 * Bytes of one work unit of run(): record address, groups, coefficients address, substeps (i32), a, b (f32),
 * the unit's first position in the raw arrays and its number of positions (i32).
 */
export const UNIT_BYTES = 32;

/** The functions' order in generateGMRolloutModule (their indices for calls). */
const [PREPARE, STEPS, FINISH, , PACK, UNPACK] = [0, 1, 2, 3, 4, 5];

/**
 * pack(unit, means, x, xs, logw): copies the unit's positions from the raw (channels-last) arrays into its
 * groups' records, 4 positions per group, one per lane; the unit's last group is zeroed first so that its
 * padding lanes hold finite values.
 */
function packFunction(L: Layout): FunctionBody {
  const { K, C } = L;
  const f = new FunctionBody([I32, I32, I32, I32, I32]);
  const [unit, means, x, xs, logw] = [0, 1, 2, 3, 4];
  const [rec, count, last, lane, src] = [
    f.local(I32),
    f.local(I32),
    f.local(I32),
    f.local(I32),
    f.local(I32),
  ];
  f.get(unit).loadI32(0).set(rec);
  f.get(unit).loadI32(28).set(count);
  // last = rec + (groups − 1)·bytes
  f.get(rec).get(unit).loadI32(4).i32(1).op(Op.i32Sub).i32(L.bytes).op(Op.i32Mul).op(Op.i32Add).set(last);
  for (let at = 0; at < L.bytes; at += 16) f.get(last).f32x4(0).store128(at);
  f.countedLoop(count, (i) => {
    // lane = rec + (i >> 2)·bytes + (i & 3)·4; position p = pos0 + i
    f.get(rec).get(i).i32(2).op(Op.i32ShrU).i32(L.bytes).op(Op.i32Mul).op(Op.i32Add);
    f.get(i).i32(3).op(Op.i32And).i32(4).op(Op.i32Mul).op(Op.i32Add).set(lane);
    const copy = (array: number, perPosition: number, field: number) => {
      f.get(unit)
        .loadI32(24)
        .get(i)
        .op(Op.i32Add)
        .i32(perPosition * 4)
        .op(Op.i32Mul)
        .get(array)
        .op(Op.i32Add);
      f.set(src);
      for (let j = 0; j < perPosition; j++)
        f.get(lane)
          .get(src)
          .loadF32(j * 4)
          .storeF32(v(field + j));
    };
    copy(means, K * C, L.MU);
    copy(x, C, L.X);
    copy(xs, C, L.XS);
    copy(logw, K, L.LOGW);
  });
  return f;
}

/** unpack(unit, x): writes the unit's results (X of its records) back over its positions of the raw x array. */
function unpackFunction(L: Layout): FunctionBody {
  const { C } = L;
  const f = new FunctionBody([I32, I32]);
  const [unit, x] = [0, 1];
  const [count, lane, dst] = [f.local(I32), f.local(I32), f.local(I32)];
  f.get(unit).loadI32(28).set(count);
  f.countedLoop(count, (i) => {
    f.get(unit).loadI32(0).get(i).i32(2).op(Op.i32ShrU).i32(L.bytes).op(Op.i32Mul).op(Op.i32Add);
    f.get(i).i32(3).op(Op.i32And).i32(4).op(Op.i32Mul).op(Op.i32Add).set(lane);
    f.get(unit)
      .loadI32(24)
      .get(i)
      .op(Op.i32Add)
      .i32(C * 4)
      .op(Op.i32Mul)
      .get(x)
      .op(Op.i32Add)
      .set(dst);
    for (let c = 0; c < C; c++)
      f.get(dst)
        .get(lane)
        .loadF32(v(L.X + c))
        .storeF32(c * 4);
  });
  return f;
}

/**
 * run(units, count, means, x, xs, logw): for each of `count` units, pack, prepare, steps, finish (C > 1) and
 * unpack — one call per thread's share, each unit's data staying in that thread's caches.
 */
function runFunction(C: number): FunctionBody {
  const f = new FunctionBody([I32, I32, I32, I32, I32, I32]);
  const [units, count, means, x, xs, logw] = [0, 1, 2, 3, 4, 5];
  const unit = f.local(I32);
  f.get(units).set(unit);
  f.countedLoop(
    count,
    () => {
      f.get(unit).get(means).get(x).get(xs).get(logw).call(PACK);
      const recordAndGroups = () => f.get(unit).loadI32(0).get(unit).loadI32(4);
      recordAndGroups().call(PREPARE);
      recordAndGroups().get(unit).loadI32(8).get(unit).loadI32(12).call(STEPS);
      // with one channel the substeps update x itself, in place: nothing to rebuild
      if (C !== 1) recordAndGroups().get(unit).loadF32(16).get(unit).loadF32(20).call(FINISH);
      f.get(unit).get(x).call(UNPACK);
    },
    { pointers: [[unit, UNIT_BYTES]] },
  );
  return f;
}

interface Kernel {
  L: Layout;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** Largest size the memory may grow to, in bytes. */
  maxBytes: number;
  run: (units: number, count: number, means: number, x: number, xs: number, logw: number) => void;
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

/**
 * Generates the module's bytes for K components and C channels (exported for tests and inspection); with
 * `sharedMemory` it imports a shared memory, for several threads at once.
 */
export function generateGMRolloutModule(K: number, C: number, sharedMemory = false): Uint8Array<ArrayBuffer> {
  const L = layout(K, C);
  return assembleModule(
    [
      { name: 'prepare', body: prepareFunction(L) },
      { name: 'steps', body: C === 1 ? stepsOneChannelFunction(L) : stepsFunction(L) },
      { name: 'finish', body: finishFunction(L) },
      { name: 'run', body: runFunction(C) },
      { name: 'pack', body: packFunction(L) },
      { name: 'unpack', body: unpackFunction(L) },
    ],
    { sharedMemory },
  );
}

/** Whether the unrolled kernel for (K, C) stays within the code-size budget. */
export function simdKernelFits(K: number, C: number): boolean {
  const prepareOps = ((K * (K + 1)) / 2) * C + 2 * K * C;
  const stepOps = K * K + 40 * K;
  return prepareOps <= MAX_UNROLLED && stepOps <= MAX_UNROLLED && K * C <= MAX_UNROLLED;
}

/** The largest size of a shared memory (it must be declared): 1 GiB, far above a chunk (CHUNK_BYTES). */
const MAX_SHARED_PAGES = 16384;
const WASM32_BYTES = 2 ** 32;

function instantiate(K: number, C: number, module: WebAssembly.Module, shared: boolean): Kernel {
  const memory = shared
    ? new WebAssembly.Memory({ initial: 1, maximum: MAX_SHARED_PAGES, shared: true })
    : new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return {
    L: layout(K, C),
    module,
    memory,
    maxBytes: shared ? MAX_SHARED_PAGES * 65536 : WASM32_BYTES,
    run: (instance.exports as Record<string, (...args: number[]) => void>).run!,
  };
}

/**
 * The kernel for (K, C), compiled on first use (`shared`: the variant several threads run at once).
 * Synchronous compilation is used where allowed (Node, workers); where the engine refuses it (browsers' main
 * thread limits synchronous compiles to 4 KB), compilation continues asynchronously and `undefined` is returned
 * until it is ready (callers use the JS kernel).
 */
function kernelFor(K: number, C: number, shared: boolean): Kernel | undefined {
  const key = `${K}x${C}${shared ? ' shared' : ''}`;
  const cached = kernels.get(key);
  if (cached === null) return undefined;
  if (cached && !(cached instanceof Promise)) return cached;
  if (cached instanceof Promise) return undefined;
  if (!wasmSimdSupported() || !simdKernelFits(K, C)) {
    kernels.set(key, null);
    return undefined;
  }
  const bytes = generateGMRolloutModule(K, C, shared);
  try {
    const kernel = instantiate(K, C, new WebAssembly.Module(bytes), shared);
    kernels.set(key, kernel);
    return kernel;
  } catch {
    kernels.set(
      key,
      // instantiating can fail too (e.g. a shared memory the engine refuses): the JS kernel then
      WebAssembly.compile(bytes)
        .then((module) => void kernels.set(key, instantiate(K, C, module, shared)))
        .catch(() => void kernels.set(key, null)),
    );
    return undefined;
  }
}

/** Units cover at most this many groups, so V8's tier-up (per call of steps) reaches long rollouts early. */
const GROUPS_PER_CALL = 8 * INTERLEAVE;

/**
 * Items are repacked and rolled out in chunks of records of at most this many bytes (at least one item), small
 * enough to stay in a core's caches: 100 MNIST items (784 positions, K = 8) cost 5 ms besides their substeps in
 * 1 MiB chunks, 9 ms all at once.
 */
const CHUNK_BYTES = 1 << 20;
/**
 * Chunks are this many times larger when threads share them (fewer hand-overs). 100 MNIST items on 2 threads
 * (bench:gm-threads of @piflow/backend-node): 21.4 ms at 16 MiB, 20.5 at 4 MiB, 22.4 at 1 MiB — one run each.
 */
const THREADED_CHUNK_FACTOR = 16;

/** The registered thread pool when it has threads to share and this engine has shared memory. */
function usablePool(): WasmThreadPool | undefined {
  const pool = wasmThreadPool();
  return pool && pool.threads > 1 && typeof SharedArrayBuffer === 'function' ? pool : undefined;
}

/**
 * Runs the fused GM rollout with the SIMD kernel, split over the threads of the registered pool
 * (`@piflow/core/wasm`'s wasmThreadPool) where there is one; returns undefined where WebAssembly SIMD is
 * unavailable, the kernel would be too large, or it is still compiling.
 */
export function gmRolloutSimd(arrays: GMRolloutArrays, plan: GMRolloutPlan): Float32Array | undefined {
  const { batch: B, positions: P, components: K, channels: C } = arrays;
  let pool = usablePool();
  let kernel = kernelFor(K, C, pool !== undefined);
  const groupsPerItem = Math.ceil(Math.ceil(P / 4) / INTERLEAVE) * INTERLEAVE;
  // threads share a chunk's items: bigger chunks (fewer hand-overs) on more threads
  const chunk = CHUNK_BYTES * (pool ? THREADED_CHUNK_FACTOR : 1);
  const itemsPerChunk = Math.max(
    1,
    Math.min(B, Math.floor(chunk / (groupsPerItem * (kernel?.L.bytes ?? 1)))),
  );
  if (
    kernel &&
    pool &&
    chunkLayout(kernel.L, arrays, plan, groupsPerItem, 0, itemsPerChunk).end > kernel.maxBytes
  ) {
    pool = undefined; // an item too large for the shared memory: one thread, in an unshared one
    kernel = kernelFor(K, C, false);
  }
  if (!kernel) return undefined;
  const out = new Float32Array(B * P * C);
  for (let first = 0; first < B; first += itemsPerChunk) {
    const end = Math.min(B, first + itemsPerChunk);
    if (!rollChunk(kernel, pool, arrays, plan, groupsPerItem, first, end, out)) return undefined;
  }
  return out;
}

/**
 * Where a chunk of items [first, end) lies in the kernel's memory (bytes): records, coefficient tables, work
 * units, the raw arrays; `end` is the memory it needs.
 */
interface ChunkLayout {
  itemBytes: number;
  coefficients: number;
  units: number;
  unitCount: number;
  means: number;
  x: number;
  xs: number;
  logw: number;
  end: number;
}

function chunkLayout(
  L: Layout,
  arrays: GMRolloutArrays,
  plan: GMRolloutPlan,
  groupsPerItem: number,
  first: number,
  end: number,
): ChunkLayout {
  const { positions: P, components: K, channels: C } = arrays;
  const items = end - first;
  const itemBytes = groupsPerItem * L.bytes;
  const coefficients = items * itemBytes;
  let at = coefficients;
  for (let item = first; item < end; item++) at += plan.steps[item]! * COEFFICIENTS_PER_STEP * 4;
  const units = at;
  const unitCount = items * Math.ceil(groupsPerItem / GROUPS_PER_CALL);
  const means = units + unitCount * UNIT_BYTES;
  const x = means + items * P * K * C * 4;
  const xs = x + items * P * C * 4;
  const logw = xs + items * P * C * 4;
  return { itemBytes, coefficients, units, unitCount, means, x, xs, logw, end: logw + items * P * K * 4 };
}

/** Copies items [first, end) into the kernel's memory, rolls them out, writes the results into `out`. */
function rollChunk(
  kernel: Kernel,
  pool: WasmThreadPool | undefined,
  arrays: GMRolloutArrays,
  plan: GMRolloutPlan,
  groupsPerItem: number,
  first: number,
  end: number,
  out: Float32Array,
): boolean {
  const { positions: P, components: K, channels: C, x, xSrc, means, logweights } = arrays;
  const { L, memory } = kernel;
  const at = chunkLayout(L, arrays, plan, groupsPerItem, first, end);
  if (at.end > kernel.maxBytes) return false;
  if (memory.buffer.byteLength < at.end) {
    memory.grow(Math.ceil((at.end - memory.buffer.byteLength) / 65536));
  }
  const heap = new Float32Array(memory.buffer);
  const words = new Int32Array(memory.buffer);
  heap.set(means.subarray(first * P * K * C, end * P * K * C), at.means / 4);
  heap.set(x.subarray(first * P * C, end * P * C), at.x / 4);
  heap.set(xSrc.subarray(first * P * C, end * P * C), at.xs / 4);
  heap.set(logweights.subarray(first * P * K, end * P * K), at.logw / 4);
  // coefficient tables, then the work units (blocks of at most GROUPS_PER_CALL groups) with their costs
  const coefficientsAt: number[] = [];
  let c = at.coefficients;
  for (let item = first; item < end; item++) {
    coefficientsAt.push(c);
    heap.set(plan.coefficients[item]!, c / 4);
    c += plan.steps[item]! * COEFFICIENTS_PER_STEP * 4;
  }
  const costs: number[] = [];
  let w = at.units / 4;
  for (let item = first; item < end; item++) {
    const n = plan.steps[item]!;
    for (let g = 0; g < groupsPerItem; g += GROUPS_PER_CALL) {
      const groups = Math.min(GROUPS_PER_CALL, groupsPerItem - g);
      words[w] = (item - first) * at.itemBytes + g * L.bytes;
      words[w + 1] = groups;
      words[w + 2] = coefficientsAt[item - first]!;
      words[w + 3] = n;
      heap[w + 4] = plan.a[item]!;
      heap[w + 5] = plan.b[item]!;
      words[w + 6] = (item - first) * P + g * 4;
      words[w + 7] = Math.min(P - g * 4, groups * 4);
      costs.push(groups * (n + 2));
      w += UNIT_BYTES / 4;
    }
  }
  const raw = [at.means, at.x, at.xs, at.logw];
  if (pool) {
    let start = 0;
    const tasks = splitByCost(costs, pool.threads).map((stop) => {
      const task = [{ name: 'run', args: [at.units + start * UNIT_BYTES, stop - start, ...raw] }];
      start = stop;
      return task;
    });
    pool.run(kernel.module, memory, tasks);
  } else {
    kernel.run(at.units, costs.length, at.means, at.x, at.xs, at.logw);
  }
  // the results replaced x in the raw array
  out.set(new Float32Array(memory.buffer, at.x, (end - first) * P * C), first * P * C);
  return true;
}
