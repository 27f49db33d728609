/**
 * Where a few-step student's error comes from, on an exact Gaussian mixture (the `analytic-gm:` file a
 * `bench:mixtures` run writes): hybrid samplers that take some steps with the student and the others with the
 * exact ODE (midpoint, 100 substeps per step), and — for a DX student — each grid point of one step against
 * the oracle DX policy, whose grid is the teacher's own x0 along its own trajectory from the same state.
 *
 *   pnpm --filter @piflow/cli bench:student-steps -- --model /tmp/piflow-mixtures/dx-4-m11/model \
 *     --mixture /tmp/piflow-mixtures/mixture-11.json [--samples 4000] [--patterns TTTT,OOOO,SSSS,TTST] \
 *     [--grid-step 2]
 *
 * Pattern letters, one per step: S the student, T the exact ODE, O the oracle DX policy (N = the student's
 * grid points, else 10). Each row: coverage TV, spread inside modes and mean log-density minus the data's, and
 * against the exact ODE run from the same noise (TTTT): the TV between the two samplers' component frequencies
 * and the share of samples that end in a different component. The ODE's own sampling noise cancels in these
 * two, so they show a sampler's bias in mode weights at sample counts where coverage TV is at its noise floor.
 * `--grid-step i`: step i (from the ODE's state) of a student whose policy has an x0 grid (DX), per grid
 * point n (0 = the step's end): RMS error per dimension against the oracle grid and the radial coefficient β
 * of that error along the oracle point's offset from its component mean (β > 0: the student's x0 lies
 * further out than the teacher's).
 */
import { readFileSync } from 'node:fs';
import {
  createAnalyticGMFlow,
  createRandom,
  flowMapSchedule,
  type PolicyFamily,
  rollout,
  sigmaVector,
  unwarp,
  warp,
} from '@piflow/core';
import { gaussianMixtureMeasures, gaussianMixtureModeShift } from '@piflow/eval';
import { isFlowModel, type PolicyStudent } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { loadAnyModel, selectBackend } from '../src/context';

const args = process.argv.slice(2);
const option = (name: string, fallback?: string) => {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1]!;
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
};
await selectBackend({ backend: 'cpu' }, () => {});
const flow = createAnalyticGMFlow(JSON.parse(readFileSync(option('mixture'), 'utf8')));
const loaded = await loadAnyModel(option('model'));
if (isFlowModel(loaded.model)) throw new Error('--model: a student, not a flow model');
const student = loaded.model as PolicyStudent;
const family = loaded.families.get(student.family) as PolicyFamily<unknown, Record<string, unknown>>;
const manifest = loaded.manifest;
const shift = manifest.sampling?.shift ?? 1;
const nfe = manifest.sampling?.numInferenceSteps ?? 4;
const schedule = flowMapSchedule({
  numInferenceSteps: nfe,
  shift,
  finalStepSizeScale: manifest.sampling?.finalStepSizeScale ?? 1,
});
const count = Number(option('samples', '4000'));
const numPoints = Number(student.headOptions.numPoints ?? 10);
const noise = tf.randomNormal([count, flow.dimension], 0, 1, 'float32', 3);
const data = flow.sample(20000, createRandom(8)).x0;
const dataMeasures = gaussianMixtureMeasures(flow, data.dataSync());
data.dispose();

const ends = (i: number) => [schedule.sigmas[i]!, schedule.sigmasDst[i]!] as const;

function studentStep(x: tf.Tensor, i: number): tf.Tensor {
  return tf.tidy(() => {
    const [s, d] = ends(i);
    const policy = family.create(student.predict(x, sigmaVector(s, count)), x, s, {
      ...student.policyOptions,
    });
    const y = rollout(policy, x, { sigmaSrc: s, sigmaDst: d, substeps: 128, shift });
    policy.dispose();
    return y;
  });
}

/** The exact ODE over step i (midpoint rule, n substeps uniform in raw time); onSubstep sees each new state. */
function odeStep(
  x: tf.Tensor,
  i: number,
  n = 100,
  onSubstep?: (y: tf.Tensor, substep: number, sigma: number) => void,
): tf.Tensor {
  return tf.tidy(() => {
    const [s, d] = ends(i);
    const [r0, r1] = [unwarp(s, shift), unwarp(d, shift)];
    let y = x;
    for (let j = 0; j < n; j++) {
      const [sa, sm, sb] = [j, j + 0.5, j + 1].map((k) => warp(r0 + ((r1 - r0) * k) / n, shift)) as [
        number,
        number,
        number,
      ];
      const mid = tf.add(y, tf.mul(flow.velocity(y, sa), sm - sa));
      y = tf.add(y, tf.mul(flow.velocity(mid, sm), sb - sa));
      onSubstep?.(y, j + 1, sb);
    }
    return y;
  });
}

/** The oracle DX grid of step i: the teacher's x0 along its own trajectory at the N raw-time grid points. */
function oracleGrid(x: tf.Tensor, i: number, N: number): tf.Tensor {
  return tf.tidy(() => {
    const x0At = (z: tf.Tensor, sigma: number) =>
      sigma === 0 ? z : tf.sub(z, tf.mul(flow.velocity(z, sigma), sigma));
    const grid: tf.Tensor[] = new Array(N);
    grid[N - 1] = x0At(x, ends(i)[0]);
    // substeps per grid interval: grid point k (k/(N − 1) of the way from the step's end) is a substep's end
    const perInterval = N > 1 ? Math.ceil(100 / (N - 1)) : 100;
    const n = perInterval * Math.max(N - 1, 1);
    odeStep(x, i, n, (y, substep, sigma) => {
      const k = N - 1 - substep / perInterval;
      if (N > 1 && Number.isInteger(k)) grid[k] = tf.keep(x0At(y, sigma));
    });
    const stacked = tf.stack(grid, 1);
    tf.dispose(grid.slice(0, N - 1)); // kept out of odeStep's scope; the last one is this scope's
    return stacked;
  });
}

function oracleStep(x: tf.Tensor, i: number): tf.Tensor {
  return tf.tidy(() => {
    const [s, d] = ends(i);
    const dx = loaded.families.get('dx') as PolicyFamily<unknown, Record<string, unknown>>;
    const policy = dx.create({ space: 'x0', x0Grid: oracleGrid(x, i, numPoints) }, x, s, {
      ...student.policyOptions,
    });
    const y = rollout(policy, x, { sigmaSrc: s, sigmaDst: d, substeps: 128, shift });
    policy.dispose();
    return y;
  });
}

console.log(`${student.family} student, ${nfe} steps, σ ${[...schedule.sigmas].map((s) => s.toFixed(3))}`);
console.log(
  '| steps (S student, T exact ODE, O oracle DX) | TV | spread | Δlog-density | TV against the ODE | modes ≠ the ODE |',
);
console.log('|---|---|---|---|---|---|');
function run(pattern: string): Float32Array {
  let x = noise.clone();
  for (let i = 0; i < nfe; i++) {
    const c = pattern[i];
    const y = c === 'S' ? studentStep(x, i) : c === 'O' ? oracleStep(x, i) : odeStep(x, i);
    x.dispose();
    x = y;
  }
  const values = x.dataSync() as Float32Array;
  x.dispose();
  return values;
}
const exact = run('T'.repeat(nfe));
const patterns = option('patterns', ['T', 'O', 'S'].map((c) => c.repeat(nfe)).join(',')).split(',');
for (const pattern of patterns) {
  const values = run(pattern);
  const m = gaussianMixtureMeasures(flow, values);
  const gap = m.logDensity - dataMeasures.logDensity;
  // with the same noise, the exact ODE's sampling noise cancels: what is left is the sampler's own bias
  const shift = gaussianMixtureModeShift(flow, values, exact);
  console.log(
    `| ${pattern} | ${m.coverageTV.toFixed(4)} | ${m.spread.toFixed(3)} | ${gap.toFixed(3)} | ${shift.tv.toFixed(4)} | ${(100 * shift.moved).toFixed(2)} % |`,
  );
}

const gridStep = args.includes('--grid-step') ? Number(option('grid-step')) : undefined;
if (gridStep !== undefined) {
  let x = noise.clone();
  for (let i = 0; i < gridStep; i++) {
    const y = odeStep(x, i);
    x.dispose();
    x = y;
  }
  const [s, d] = ends(gridStep);
  const policy = family.create(student.predict(x, sigmaVector(s, count)), x, s, {
    ...student.policyOptions,
  }) as unknown as { x0Grid?: tf.Tensor; dispose(): void };
  if (!(policy.x0Grid instanceof tf.Tensor)) {
    throw new Error(`--grid-step: the ${student.family} student's policy has no x0 grid to compare`);
  }
  const grid = policy.x0Grid.arraySync() as number[][][];
  policy.dispose();
  const oracle = oracleGrid(x, gridStep, numPoints).arraySync() as number[][][];
  // each sample's component: the nearest noisy component centre of the exact ODE's state at the step's end
  const end = odeStep(x, gridStep);
  const C = flow.dimension;
  const component = (end.arraySync() as number[][]).map((row) => {
    let best = 0;
    let bestDistance = Number.POSITIVE_INFINITY;
    flow.means.forEach((mean, k) => {
      const distance = row.reduce((a, v, c) => a + (v - (1 - d) * mean[c]!) ** 2, 0);
      if (distance < bestDistance) [best, bestDistance] = [k, distance];
    });
    return best;
  });
  tf.dispose([x, end]);
  console.log(`\nstep ${gridStep} (σ ${s.toFixed(3)} → ${d.toFixed(3)}), grid point n = 0 at the step's end`);
  console.log('| n | RMS error / dim | radial β |');
  console.log('|---|---|---|');
  for (let n = 0; n < numPoints; n++) {
    let [dot, norm, squared] = [0, 0, 0];
    for (let b = 0; b < count; b++) {
      for (let c = 0; c < C; c++) {
        const offset = oracle[b]![n]![c]! - flow.means[component[b]!]![c]!;
        const error = grid[b]![n]![c]! - oracle[b]![n]![c]!;
        [dot, norm, squared] = [dot + error * offset, norm + offset * offset, squared + error * error];
      }
    }
    console.log(`| ${n} | ${Math.sqrt(squared / count / C).toFixed(4)} | ${(dot / norm).toFixed(3)} |`);
  }
}
noise.dispose();
