/**
 * Op-by-op vs fused DX policy rollout, per backend, in one run (`pnpm bench` in this package).
 * Shape: x [2, 1024, 16] (2 × 1024 positions, C = 16), N = 10 grid points (grid and polynomial mode),
 * σ 1 → 0 with 128 substeps. Backends: PIFLOW_BENCH_BACKENDS (comma-separated), default "wasm,cpu".
 */
import { createRandom, rollout } from '@piflow/core';
import { relativeError, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { dx } from '../src/index';

const B = 2;
const P = 1024;
const C = 16;
const N = 10;
const SUBSTEPS = 128;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Timing {
  /** Median wall-clock time per run (ms). */
  wall: number;
  /** Median CPU time of this process per run (ms): robust when other processes share the cores. */
  cpu: number;
  values: Float32Array;
}

/** Times fn (which returns a tensor; the time includes reading it back) `runs` times, after `warmup` runs. */
function time(fn: () => tf.Tensor, runs: number, warmup: number): Timing {
  let values = new Float32Array(0);
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    const out = fn();
    values = out.dataSync() as Float32Array;
    const cpu = process.cpuUsage(cpuStart);
    const wall = performance.now() - start;
    out.dispose();
    if (i >= warmup) {
      walls.push(wall);
      cpus.push((cpu.user + cpu.system) / 1000);
    }
  }
  return { wall: median(walls), cpu: median(cpus), values };
}

const fmt = (t: Timing) => `${t.wall.toFixed(1).padStart(7)} ms wall, ${t.cpu.toFixed(1).padStart(7)} ms cpu`;
const ratio = (a: Timing, b: Timing) =>
  `${(a.wall / b.wall).toFixed(1)}× wall, ${(a.cpu / b.cpu).toFixed(1)}× cpu`;

const backends = (process.env.PIFLOW_BENCH_BACKENDS ?? 'wasm,cpu').split(',').map((s) => s.trim());
const rows: string[] = [];
for (const backend of backends) {
  await useBackend(backend);
  for (const mode of ['grid', 'polynomial'] as const) {
    const random = createRandom(7);
    const xSrc = random.normalTensor([B, P, C]);
    const x0Grid = random.normalTensor([B, N, P, C]);
    const policy = dx.create({ space: 'x0', x0Grid }, xSrc, 1, { mode, shift: 3.2 });
    const options = { sigmaSrc: 1, sigmaDst: 0, substeps: SUBSTEPS, shift: 3.2 };
    const opRuns = backend === 'cpu' ? 1 : 5;
    const opByOp = time(
      () => rollout(policy, xSrc, { ...options, fused: false }),
      opRuns,
      backend === 'cpu' ? 0 : 1,
    );
    const fused = time(() => rollout(policy, xSrc, options), 20, 3);
    const error = relativeError(fused.values, opByOp.values);
    rows.push(
      `${backend} (${mode}): op-by-op ${fmt(opByOp)} | fused ${fmt(fused)} | ratio ${ratio(opByOp, fused)} | ` +
        `rel. error vs op-by-op ${error.toExponential(1)}`,
    );
    console.log(rows[rows.length - 1]);
    policy.dispose();
    tf.dispose([xSrc, x0Grid]);
  }
}
console.log(
  `\nDX rollout, x [${B}, ${P}, ${C}], N = ${N}, ${SUBSTEPS} substeps (σ 1 → 0, shift 3.2), medians:`,
);
for (const row of rows) console.log(row);
