/**
 * The fused GM rollout on one thread and on the Node worker pool (`createNodeWasmThreadPool`), at MNIST
 * shapes: 100 items × 28 × 28 × 1, K = 8, one sampling step σ 0.8 → 0.55 at 128 substeps per unit time
 * (32 substeps), through `rollout()` on the cpu backend (the kernel is the same WebAssembly on cpu and wasm).
 * Prints the best of `--repeats` warm runs per thread count and checks that every count gives the same values.
 *
 *   pnpm --filter @piflow/backend-node bench:gm-threads [-- --threads 2 --repeats 7]
 */
import { createRandom, rollout } from '@piflow/core';
import { setWasmThreadPool } from '@piflow/core/wasm';
import { gm } from '@piflow/policy-gm';
import { gmUParams } from '@piflow/policy-gm/testing';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { createNodeWasmThreadPool } from '../src/wasm-thread-pool';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const threads = Number(option('threads', '2'));
const repeats = Number(option('repeats', '7'));

await tf.setBackend('cpu');
const random = createRandom(0);
const shape = [100, 28, 28, 1];
const u = gmUParams(shape, random, 8);
const xSrc = random.normalTensor(shape);
const policy = gm.create(u, xSrc, 0.8);
const run = () => {
  const y = rollout(policy, xSrc, { sigmaSrc: 0.8, sigmaDst: 0.55, substeps: 128, fused: true });
  const values = y.dataSync().slice();
  y.dispose();
  return values;
};
const best = () => {
  let values = run();
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    values = run();
    fastest = Math.min(fastest, performance.now() - started);
  }
  return { ms: fastest, values };
};

const one = best();
const pool = await createNodeWasmThreadPool(threads);
setWasmThreadPool(pool);
const many = best();
setWasmThreadPool(undefined);
await pool.close();
const same = one.values.every((v, i) => v === many.values[i]);

console.log(
  `fused GM rollout, [100, 28, 28, 1], K = 8, 32 substeps (Node ${process.version}, best of ${repeats})`,
);
console.log(`| threads | ms | speed-up |\n|---|---|---|`);
console.log(`| 1 | ${one.ms.toFixed(1)} | 1.00× |`);
console.log(`| ${threads} | ${many.ms.toFixed(1)} | ${(one.ms / many.ms).toFixed(2)}× |`);
console.log(`same values: ${same}`);
policy.dispose();
tf.dispose([u.means, u.logweights, u.logstd, xSrc]);
if (!same) process.exitCode = 1;
