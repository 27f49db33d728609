/**
 * Op-by-op vs fused GM policy rollout, per backend, in one run (`pnpm bench` in this package).
 * Shape: x [2, 1024, 16] (2 × 1024 positions, C = 16), K = 8 components, σ 1 → 0 with 128 substeps.
 * Backends: PIFLOW_BENCH_BACKENDS (comma-separated), default "wasm,cpu".
 */
import { createRandom, rollout } from '@piflow/core';
import { relativeError, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { gm } from '../src/index';
import { setGMFusedImplementation } from '../src/kernels/gm-fused-kernel';
import { simdInstructionsPerNanosecond } from './simd-peak';

const B = 2;
const P = 1024;
const C = 16;
const K = 8;
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
  const random = createRandom(7);
  const xSrc = random.normalTensor([B, P, C]);
  const params = {
    space: 'u' as const,
    means: random.normalTensor([B, P, K, C]),
    logweights: tf.tidy(() => tf.mul(random.normalTensor([B, P, K]), 0.7)),
    logstd: tf.tidy(() => tf.sub(tf.mul(random.normalTensor([B]), 0.2), 0.8)) as tf.Tensor1D,
  };
  const policy = gm.create(params, xSrc, 1);
  const options = { sigmaSrc: 1, sigmaDst: 0, substeps: SUBSTEPS, shift: 1 };
  const opRuns = backend === 'cpu' ? 1 : 5;
  const opByOp = time(
    () => rollout(policy, xSrc, { ...options, fused: false }),
    opRuns,
    backend === 'cpu' ? 0 : 1,
  );
  setGMFusedImplementation('auto');
  const fused = time(() => rollout(policy, xSrc, options), 20, 5);
  setGMFusedImplementation('js');
  const fusedJS = time(() => rollout(policy, xSrc, options), 5, 1);
  setGMFusedImplementation('auto');
  const error = relativeError(fused.values, opByOp.values);
  const errorJS = relativeError(fusedJS.values, opByOp.values);
  rows.push(
    `${backend}: op-by-op ${fmt(opByOp)} | fused ${fmt(fused)} | ratio ${ratio(opByOp, fused)} | ` +
      `fused JS loop ${fmt(fusedJS)} (${ratio(opByOp, fusedJS)}) | rel. error vs op-by-op: fused ${error.toExponential(1)}, JS ${errorJS.toExponential(1)}`,
  );
  console.log(rows[rows.length - 1]);
  policy.dispose();
  tf.dispose([xSrc, params.means, params.logweights, params.logstd]);
}
// Arithmetic floor: SIMD instructions of the fused substep loop (one v128 = 4 positions) at the best rate
// this engine retires independent f32x4 mul/add (measured below), and the same for the textbook formula.
const rate = simdInstructionsPerNanosecond();
const groupSteps = B * Math.ceil(P / 4) * SUBSTEPS;
const fusedInstructions = groupSteps * (2 * K * K + 37 * K + 5);
const directInstructions = groupSteps * (4 * K * C + 8 * C + 30 * K);
console.log(
  `\nArithmetic floor (one core, ${rate.toFixed(2)} SIMD instr/ns = ${(4 * rate).toFixed(1)} GFLOP/s measured): ` +
    `fused substep loop ${(fusedInstructions / 1e6).toFixed(1)} M instr → ${(fusedInstructions / rate / 1e6).toFixed(2)} ms; ` +
    `textbook O(K·C) formula ${(directInstructions / 1e6).toFixed(1)} M instr → ${(directInstructions / rate / 1e6).toFixed(2)} ms`,
);
console.log(`\nGM rollout, x [${B}, ${P}, ${C}], K = ${K}, ${SUBSTEPS} substeps (σ 1 → 0), medians:`);
for (const row of rows) console.log(row);
