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

const B = 2;
const P = 1024;
const C = 16;
const K = 8;
const SUBSTEPS = 128;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Times fn (which returns a tensor; the time includes reading it back) `runs` times, after `warmup` runs. */
function time(fn: () => tf.Tensor, runs: number, warmup: number): { ms: number; values: Float32Array } {
  let values = new Float32Array(0);
  const times: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const start = performance.now();
    const out = fn();
    values = out.dataSync() as Float32Array;
    const ms = performance.now() - start;
    out.dispose();
    if (i >= warmup) times.push(ms);
  }
  return { ms: median(times), values };
}

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
    `${backend.padEnd(5)} | op-by-op ${opByOp.ms.toFixed(1).padStart(8)} ms | fused (wasm SIMD) ${fused.ms
      .toFixed(2)
      .padStart(
        7,
      )} ms | ratio ${(opByOp.ms / fused.ms).toFixed(1).padStart(6)}× | fused (JS loop) ${fusedJS.ms
      .toFixed(1)
      .padStart(
        6,
      )} ms (${(opByOp.ms / fusedJS.ms).toFixed(1)}×) | rel. error SIMD ${error.toExponential(1)}, JS ${errorJS.toExponential(1)}`,
  );
  console.log(rows[rows.length - 1]);
  policy.dispose();
  tf.dispose([xSrc, params.means, params.logweights, params.logstd]);
}
console.log(`\nGM rollout, x [${B}, ${P}, ${C}], K = ${K}, ${SUBSTEPS} substeps (σ 1 → 0), medians:`);
for (const row of rows) console.log(row);
