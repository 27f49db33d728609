/**
 * Fused vs op-by-op rollout benchmarks (`benchmarkRollouts`), the same cases on every backend.
 * @module @piflow/core/testing/benchmark
 */
// Fused vs op-by-op rollouts and a 4-step GM sampling run on the active tfjs backend, the same cases for every
// backend: the WebGPU benches (Node through Dawn, headless Chromium) and the cpu/wasm bench of
// @piflow/backend-node run this. Every ratio is measured within one run.
import * as tf from '@tensorflow/tfjs-core';
import { createAnalyticGMFlow } from '../analytic-gm-flow';
import type { PolicyFamily } from '../policy-family';
import { createRandom } from '../random';
import { rollout } from '../rollout';
import { sample } from '../sample';
import type { Student } from '../types';

export interface BenchRow {
  name: string;
  /** The probe's note on the timed repeats (e.g. the VM's CPU steal during them), when a probe was given. */
  note?: string;
  /** Median wall time of one run including the readback, in ms. */
  ms: number;
  /** Median process CPU time (all threads, e.g. llvmpipe's) of one run, in ms (Node only). */
  cpuMs?: number;
}

interface Timing {
  ms: number;
  cpuMs?: number;
  /** What `RolloutBenchmarkOptions.probe` said about the timed repeats. */
  note?: string;
}

/** Started just before a measurement's timed repeats; the function it returns is called just after them. */
export type BenchmarkProbe = () => () => string | undefined;

const cpuUsage = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process
  ?.cpuUsage;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function timeIt(fn: () => tf.Tensor, repeats: number): Promise<Timing> {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const c0 = cpuUsage?.();
    const t0 = performance.now();
    const out = fn();
    await out.data();
    walls.push(performance.now() - t0);
    const c1 = cpuUsage?.();
    if (c0 && c1) cpus.push((c1.user - c0.user + c1.system - c0.system) / 1000);
    out.dispose();
  }
  return { ms: median(walls), ...(cpus.length ? { cpuMs: median(cpus) } : {}) };
}

/**
 * Warm-up, then the median of `repeats`. The warm-up runs `warmups` times and for at least `warmupMs`: the
 * first calls compile the shader, and for a second or so after start-up V8's background compiler threads
 * optimise tfjs's code and compete with llvmpipe's threads for this machine's two cores.
 */
async function measure(
  fn: () => tf.Tensor,
  repeats: number,
  warmups = 2,
  warmupMs = 1500,
  probe?: BenchmarkProbe,
): Promise<Timing> {
  const start = performance.now();
  await timeIt(fn, warmups);
  while (performance.now() - start < warmupMs) await timeIt(fn, 1);
  const stop = probe?.();
  const timing = await timeIt(fn, repeats);
  const note = stop?.();
  return note === undefined ? timing : { ...timing, note };
}

const show = (t: Timing, scale = 1, withNote = true) =>
  `${(t.ms * scale).toFixed(t.ms * scale < 100 ? 2 : 0)} ms${t.cpuMs === undefined ? '' : ` (CPU ${(t.cpuMs * scale).toFixed(t.cpuMs * scale < 100 ? 2 : 0)} ms)`}${t.note === undefined || !withNote ? '' : `, ${t.note}`}`;

export interface RolloutBenchmarkOptions {
  /** The GM family (@piflow/policy-gm's `gm`); x0-space parameters { space, means, logweights, variance }. */
  gm: PolicyFamily;
  /** The DX family (@piflow/policy-dx's `dx`); x0-space parameters { space, x0Grid }. */
  dx: PolicyFamily;
  /** Where the result lines go. */
  log: (line: string) => void;
  /** Substeps of the op-by-op rollouts, scaled to 128 (default 16: op by op takes seconds). */
  opByOpSubsteps?: number;
  /**
   * Run around the timed repeats of every measurement (not the warm-up); its note is printed after the
   * time and kept in the row. The Node WebGPU bench reports the VM's CPU steal during the repeats with it.
   */
  probe?: BenchmarkProbe;
}

/**
 * On the active backend: the GM (K = 8) and DX (N = 10) rollouts of 128 substeps on [2 × 1024, C = 16], fused
 * vs op by op, and a 4-step `sample()` of the exact oracle GM student (2048 samples of a 16-D mixture of 8
 * Gaussians), fused vs op by op. Times include the readback; medians after a warm-up.
 */
export async function benchmarkRollouts(options: RolloutBenchmarkOptions): Promise<BenchRow[]> {
  const { gm, dx, log } = options;
  const rows: BenchRow[] = [];
  const random = createRandom(0);
  const B = 2;
  const P = 1024;
  const K = 8;
  const C = 16;
  const N = 10;
  const substeps = 128;
  const opSubsteps = options.opByOpSubsteps ?? 16;
  const scale = substeps / opSubsteps;
  const shape = [B, P, C];
  const xSrc = random.normalTensor(shape);
  const gmPolicy = gm.create(
    {
      space: 'x0',
      means: random.normalTensor([B, P, K, C]),
      logweights: random.normalTensor([B, P, K]),
      variance: tf.tensor1d([0.2, 0.3]),
    },
    xSrc,
    1,
  );
  const dxPolicy = dx.create({ space: 'x0', x0Grid: random.normalTensor([B, N, P, C]) }, xSrc, 1);

  for (const [family, policy] of [
    ['GM (K = 8)', gmPolicy],
    ['DX (N = 10)', dxPolicy],
  ] as const) {
    const fused = await measure(
      () => rollout(policy, xSrc, { sigmaSrc: 1, sigmaDst: 0, substeps }),
      30,
      2,
      1500,
      options.probe,
    );
    rows.push({ name: `${family} fused, ${substeps} substeps`, ...fused });
    log(`${family} fused, ${substeps} substeps: ${show(fused)}`);
    const op = await measure(
      () => rollout(policy, xSrc, { sigmaSrc: 1, sigmaDst: 0, substeps: opSubsteps, fused: false }),
      3,
      1,
      1500,
      options.probe,
    );
    rows.push({
      name: `${family} op by op, ${opSubsteps} substeps ×${scale}`,
      ms: op.ms * scale,
      ...(op.cpuMs === undefined ? {} : { cpuMs: op.cpuMs * scale }),
      ...(op.note === undefined ? {} : { note: op.note }),
    });
    log(
      `${family} op by op, ${opSubsteps} substeps: ${show(op)}; scaled to ${substeps}: ${show(op, scale, false)}`,
    );
    log(
      `${family} op by op / fused at ${substeps} substeps: ${((op.ms * scale) / fused.ms).toFixed(0)}× wall`,
    );
  }

  // A 4-step GM student end to end: the oracle student (the exact x0-posterior of a 16-D mixture of 8
  // Gaussians), 2048 samples, 128 substeps per unit raw time in the rollouts.
  const means = Array.from({ length: K }, () => Array.from({ length: C }, () => 2 * random.normal()));
  const flow = createAnalyticGMFlow({ means, std: 0.3 });
  const student: Student = { family: 'gm', predict: (x, sigma) => flow.posterior(x, sigma) };
  const noise = random.normalTensor([B * P, C]);
  const timings: Timing[] = [];
  for (const fused of [true, false]) {
    const t = await measure(
      () => sample(student, gm, noise, { numInferenceSteps: 4, fused }),
      fused ? 5 : 1,
      1,
      1500,
      options.probe,
    );
    timings.push(t);
    rows.push({ name: `4-step GM sample(), 2048 × 16, ${fused ? 'fused' : 'op by op'}`, ...t });
    log(`4-step GM sample(), ${fused ? 'fused' : 'op by op'}: ${show(t)}`);
  }
  log(`4-step GM sample(), op by op / fused: ${(timings[1]!.ms / timings[0]!.ms).toFixed(1)}× wall`);
  tf.dispose([xSrc, noise]);
  gmPolicy.dispose();
  dxPolicy.dispose();
  return rows;
}
