// Stock vs fixed wasm BatchMatMul, measured in one run: matMuls with transposeA / transposeB, and a training
// step of a 3-layer MLP (forward + backward through tf.grads; the BatchMatMul gradient uses the transposes).
// Prediction before measuring (ENVIRONMENT.md): transposed matMuls ~10× faster with the fix, MLP training
// steps ~4–6× faster (4.4 → 25.5 steps/s was measured when the gradient was overridden).
// Run: pnpm --filter @piflow/backend-node bench
import { createRandom, registerGradients } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { installWasmBatchMatMulFix, setupWasm, uninstallWasmBatchMatMulFix } from '../src/index';

function timeIt(fn: () => void, minMs = 400): number {
  fn(); // warm-up
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < minMs || runs < 3) {
    fn();
    runs++;
  }
  return (performance.now() - start) / runs;
}

function randomTensor(random: ReturnType<typeof createRandom>, shape: number[]): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => random.normal() * 0.1),
    shape,
  );
}

await registerGradients();
await setupWasm({ batchMatMulFix: false });
await tf.setBackend('wasm');
const random = createRandom(0);

const size = 512;
const a = randomTensor(random, [size, size]);
const b = randomTensor(random, [size, size]);
const matMulCases: Array<[string, boolean, boolean]> = [
  ['matMul 512 (no transpose)', false, false],
  ['matMul 512 transposeA', true, false],
  ['matMul 512 transposeB', false, true],
  ['matMul 512 transposeA+B', true, true],
];

// MLP 2 → 256 → 256 → 2 over 2048 points, loss = mean squared error; one step = forward + backward.
const batch = 2048;
const widths = [2, 256, 256, 2];
const weights = widths.slice(1).map((w, i) => randomTensor(random, [widths[i]!, w]));
const x = randomTensor(random, [batch, 2]);
const target = randomTensor(random, [batch, 2]);
const loss = (...ws: tf.Tensor[]) => {
  let h: tf.Tensor = x;
  ws.forEach((w, i) => {
    h = tf.matMul(h, w);
    if (i < ws.length - 1) h = tf.relu(h);
  });
  return tf.mean(tf.square(tf.sub(h, target)));
};
const gradients = tf.grads(loss);
const trainStep = () => tf.dispose(gradients(weights));

const rows: Array<[string, number, number]> = [];
for (const [label, transposeA, transposeB] of matMulCases) {
  const run = () => tf.matMul(a, b, transposeA, transposeB).dataSync();
  uninstallWasmBatchMatMulFix();
  const stock = timeIt(run);
  installWasmBatchMatMulFix();
  const fixed = timeIt(run);
  rows.push([label, stock, fixed]);
}
uninstallWasmBatchMatMulFix();
const stockStep = timeIt(() => {
  trainStep();
  tf.tidy(() => loss(...weights)).dataSync();
});
installWasmBatchMatMulFix();
const fixedStep = timeIt(() => {
  trainStep();
  tf.tidy(() => loss(...weights)).dataSync();
});
rows.push(['MLP 2-256-256-2 train step, 2048 points', stockStep, fixedStep]);

console.log(`wasm BatchMatMul: stock vs fixed (tfjs ${tf.version_core}, backend ${tf.getBackend()})`);
console.log('| case | stock ms | fixed ms | speed-up |');
console.log('|---|---|---|---|');
for (const [label, stock, fixed] of rows) {
  console.log(`| ${label} | ${stock.toFixed(2)} | ${fixed.toFixed(2)} | ${(stock / fixed).toFixed(2)}× |`);
}
tf.dispose([a, b, x, target, ...weights]);
