// Training speed on the tfjs wasm backend, stock kernels vs the piflow wasm training kernels, in one run.
// Run: pnpm --filter @piflow/models bench   (or: cd packages/models && pnpm bench)
//
// Expected before measuring (from docs/ENVIRONMENT facts): MLP 784→1024×3 at batch 64 ≈ 1.3 steps/s stock →
// ≈ 11 steps/s with materialised matMul transposes (≈ 8×); U-Net 16-32-64 throws on stock wasm
// (Conv2DBackpropFilter missing); with only that kernel added the slow stock Conv2DBackpropInput dominates;
// with all kernels ≈ 2 steps/s. A [64, 49, 3, 4, 32] transpose: ≈ 63 ms stock, a few ms as a JS copy.
import { createRequire } from 'node:module';
import path from 'node:path';
import { AdamW, createRandom, registerGradients } from '@piflow/core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import {
  createFlowModel,
  createMLPBackbone,
  createUNetBackbone,
  type FlowModel,
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
  type WasmTrainingKernelName,
} from '../src/index';

const require = createRequire(import.meta.url);
let dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
while (!dir.endsWith(`${path.sep}dist`) && dir !== path.dirname(dir)) dir = path.dirname(dir);
setWasmPaths(`${dir}${path.sep}`);
await registerGradients();
await tf.setBackend('wasm');
await tf.ready();

const BATCH = 64;
const random = createRandom(0);

/** One flow-matching training step (same ops as trainFlowModel, without its automatic kernel install). */
function makeStep(model: FlowModel, sampleShape: number[]) {
  const optimizer = new AdamW(model.variables, { learningRate: 1e-3, beta1: 0.9, beta2: 0.999 });
  const size = BATCH * sampleShape.reduce((a, b) => a * b, 1);
  return () => {
    const x0 = random.fillNormal(new Float32Array(size));
    const noise = random.fillNormal(new Float32Array(size));
    const sigma = random.fillUniform(new Float32Array(BATCH), 0.001, 1);
    const labels = Int32Array.from({ length: BATCH }, () => random.integer(11));
    tf.tidy(() => {
      const x = tf.tensor(x0, [BATCH, ...sampleShape]);
      const e = tf.tensor(noise, [BATCH, ...sampleShape]);
      const s = tf.tensor1d(sigma);
      const col = tf.reshape(s, [BATCH, ...sampleShape.map(() => 1)]);
      const xt = tf.add(tf.mul(tf.sub(1, col), x), tf.mul(col, e));
      const target = tf.sub(e, x);
      const { value, grads } = tf.variableGrads(
        () =>
          tf.mean(
            tf.square(
              tf.sub(model.velocity(xt, s as tf.Tensor1D, { labels: tf.tensor1d(labels, 'int32') }), target),
            ),
          ) as tf.Scalar,
        model.variables as tf.Variable[],
      );
      optimizer.apply(model.variables.map((v) => grads[v.name]!));
      value.dataSync();
    });
  };
}

function stepsPerSecond(step: () => void, steps: number, warmup = 1): number | string {
  try {
    for (let i = 0; i < warmup; i++) step();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) step();
    return steps / ((performance.now() - t0) / 1000);
  } catch (error) {
    return `throws: ${(error as Error).message.split('\n')[0]!.slice(0, 80)}`;
  }
}

function withKernels(kernels: readonly WasmTrainingKernelName[] | 'none', fn: () => number | string) {
  unregisterWasmTrainingKernels();
  if (kernels !== 'none') registerWasmTrainingKernels(kernels);
  return fn();
}

function fmt(v: number | string): string {
  return typeof v === 'number' ? v.toFixed(2) : v;
}

function ratio(a: number | string, b: number | string): string {
  return typeof a === 'number' && typeof b === 'number' ? `${(a / b).toFixed(1)}×` : 'n/a';
}

const all: WasmTrainingKernelName[] = [
  'BatchMatMul',
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'Transpose',
  'UnsortedSegmentSum',
];
const rows: string[] = [];

// MLP 784 → 1024 × 3 (residual), class-conditional, batch 64.
{
  const model = createFlowModel(createMLPBackbone({ inputDim: 784, width: 1024, depth: 3, numClasses: 10 }));
  const params = model.variables.reduce((n, v) => n + v.size, 0);
  const step = makeStep(model, [784]);
  const stock = withKernels('none', () => stepsPerSecond(step, 4));
  const fixed = withKernels(all, () => stepsPerSecond(step, 15));
  rows.push(
    `| MLP 784→1024×3, ${(params / 1e6).toFixed(2)} M params | ${fmt(stock)} | — | ${fmt(fixed)} | ${ratio(fixed, stock)} |`,
  );
  model.dispose();
}

// U-Net 16-32-64 on 28×28×1, class-conditional, batch 64.
{
  const model = createFlowModel(
    createUNetBackbone({ channels: [16, 32, 64], inChannels: 1, numClasses: 10 }),
  );
  const params = model.variables.reduce((n, v) => n + v.size, 0);
  const step = makeStep(model, [28, 28, 1]);
  const stock = withKernels('none', () => stepsPerSecond(step, 1, 0));
  const filterOnly = withKernels(['Conv2DBackpropFilter'], () => stepsPerSecond(step, 2));
  const fixed = withKernels(all, () => stepsPerSecond(step, 6));
  rows.push(
    `| U-Net 16-32-64 (28×28×1), ${(params / 1e6).toFixed(2)} M params | ${fmt(stock)} | ${fmt(filterOnly)} | ${fmt(fixed)} | ${ratio(fixed, filterOnly)} vs filter-only |`,
  );
  model.dispose();
}

// Micro: a rank-5 transpose and a transposed matMul (what the gradients do).
function timeMs(fn: () => void, reps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}
const micro: string[] = [];
{
  const x = tf.randomNormal([64, 49, 3, 4, 32]);
  // [B, L, 3, heads, D] → [3, B, heads, L, D] (attention-style, stays rank 5), and one that merges to rank 4.
  for (const perm of [
    [2, 0, 3, 1, 4],
    [0, 2, 3, 1, 4],
  ]) {
    const run = () => {
      const y = tf.transpose(x, perm);
      y.dataSync(); // read outside tidy: tidy scans a returned typed array element by element
      y.dispose();
    };
    const stock = withKernels('none', () => timeMs(run, 5));
    const fixed = withKernels(all, () => timeMs(run, 5));
    micro.push(
      `| transpose [64,49,3,4,32] by [${perm.join(',')}] | ${stock.toFixed(1)} ms | ${fixed.toFixed(1)} ms | ${ratio(stock, fixed)} |`,
    );
  }
  x.dispose();
}
{
  const dy = tf.randomNormal([64, 1024]);
  const w = tf.randomNormal([1024, 1024]);
  const run = () => {
    const y = tf.matMul(dy, w, false, true);
    y.dataSync();
    y.dispose();
  };
  const stock = withKernels('none', () => timeMs(run, 5));
  const fixed = withKernels(all, () => timeMs(run, 5));
  micro.push(
    `| matMul [64,1024]·[1024,1024]ᵀ (dx of a dense layer) | ${stock.toFixed(1)} ms | ${fixed.toFixed(1)} ms | ${ratio(stock, fixed)} |`,
  );
  const run2 = () => {
    const y = tf.matMul(dy, dy, true, false);
    y.dataSync();
    y.dispose();
  };
  const stock2 = withKernels('none', () => timeMs(run2, 5));
  const fixed2 = withKernels(all, () => timeMs(run2, 5));
  micro.push(
    `| matMul [64,1024]ᵀ·[64,1024] (dW of a dense layer) | ${stock2.toFixed(1)} ms | ${fixed2.toFixed(1)} ms | ${ratio(stock2, fixed2)} |`,
  );
  tf.dispose([dy, w]);
}
registerWasmTrainingKernels();

console.log(`wasm training speed, batch ${BATCH}, Node ${process.version}, tfjs ${tf.version_core}\n`);
console.log('| model | stock steps/s | + Conv2DBackpropFilter only | all piflow kernels | speed-up |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('\n| op | stock | piflow kernels | speed-up |');
console.log('|---|---|---|---|');
for (const r of micro) console.log(r);
