/**
 * Does a second core pay for the fused GM substep loop on this machine? Runs the generated SIMD `steps`
 * function over 2 × 1024 positions (K = 8, C = 16, 128 substeps) in one worker thread vs split over two worker
 * threads (same messaging overhead in both), and prints the wall-clock medians. Run with
 * `flock /tmp/piflow-bench.lock npx tsx --conditions=@piflow/source bench/two-cores.ts` in this package.
 */
import { Worker } from 'node:worker_threads';
import { createRandom } from '@piflow/core';
import { COEFFICIENTS_PER_STEP, planGMRollout } from '../src/kernels/gm-rollout-plan';
import { generateGMRolloutModule, layout } from '../src/kernels/gm-rollout-simd';

const K = 8;
const C = 16;
const GROUPS = (2 * 1024) / 4;
const SUBSTEPS = 128;
const L = layout(K, C);
const bytes = generateGMRolloutModule(K, C);

// realistic records: random means, x, x_src, log-weights, then the kernel's own prepare()
const random = createRandom(1);
const recordBytes = GROUPS * L.bytes;
const coefficientBytes = SUBSTEPS * COEFFICIENTS_PER_STEP * 4;
const pages = Math.ceil((recordBytes + coefficientBytes) / 65536) + 1;
const memory = new WebAssembly.Memory({ initial: pages });
const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
const heap = new Float32Array(memory.buffer);
random.fillNormal(heap.subarray(0, recordBytes / 4));
(instance.exports.prepare as (r: number, g: number) => void)(0, GROUPS);
const plan = planGMRollout(new Float32Array([1]), [0.1], {
  sigmaSrc: new Float32Array([1]),
  sigmaDst: new Float32Array([0]),
  substeps: SUBSTEPS,
  shift: 1,
});
heap.set(plan.coefficients[0]!, recordBytes / 4);
const image = heap.slice(0, (recordBytes + coefficientBytes) / 4);

const workerSource = `
const { parentPort } = require('node:worker_threads');
let run;
parentPort.on('message', (m) => {
  if (m.type === 'init') {
    const memory = new WebAssembly.Memory({ initial: m.pages });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(m.bytes), { env: { memory } });
    new Float32Array(memory.buffer).set(m.image);
    const steps = instance.exports.steps;
    run = () => {
      for (let g = m.first; g < m.first + m.groups; g += 8) {
        steps(g * m.recordSize, Math.min(8, m.first + m.groups - g), m.coefficients, m.substeps);
      }
    };
    for (let i = 0; i < 3; i++) run(); // tier up
    parentPort.postMessage('ready');
  } else {
    run();
    parentPort.postMessage('done');
  }
});`;

async function startWorkers(split: number): Promise<Worker[]> {
  const per = GROUPS / split;
  const workers = Array.from({ length: split }, () => new Worker(workerSource, { eval: true }));
  await Promise.all(
    workers.map(
      (w, i) =>
        new Promise<void>((resolve) => {
          w.once('message', () => resolve());
          w.postMessage({
            type: 'init',
            pages,
            bytes,
            image,
            first: i * per,
            groups: per,
            recordSize: L.bytes,
            coefficients: recordBytes,
            substeps: SUBSTEPS,
          });
        }),
    ),
  );
  return workers;
}

async function timeWorkers(workers: Worker[], runs: number): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('message', () => resolve());
            w.postMessage({ type: 'run' });
          }),
      ),
    );
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(runs / 2)]!;
}

const one = await startWorkers(1);
const two = await startWorkers(2);
const results: [number, number][] = [];
for (let round = 0; round < 3; round++) {
  results.push([await timeWorkers(one, 15), await timeWorkers(two, 15)]);
}
for (const w of [...one, ...two]) await w.terminate();
for (const [a, b] of results) {
  console.log(
    `substep loop, 2048 positions: 1 thread ${a.toFixed(2)} ms, 2 threads ${b.toFixed(2)} ms (×${(a / b).toFixed(2)})`,
  );
}
