// Run as a child process by wasm-threads.test.ts: sets up the wasm backend with the thread count given as
// argv[2], runs a convolution, a matMul and their gradients, and prints one JSON line with the
// thread count the backend reports, the threads of piflow's kernel pool and the results.
import { wasmThreadPool } from '@piflow/core/wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { setupWasm } from '../setup-wasm';

const threads = Number(process.argv[2]);
const setup = await setupWasm({ threads });
await tf.setBackend('wasm');
await tf.ready();

// Deterministic inputs, no tfjs random ops: values from a fixed integer hash.
const values = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => (((i * 2654435761 + seed * 97) >>> 0) % 1000) / 500 - 1);
const x = tf.tensor4d(values(8 * 28 * 28 * 16, 1), [8, 28, 28, 16]);
const w = tf.tensor4d(values(3 * 3 * 16 * 32, 2), [3, 3, 16, 32]);
const a = tf.tensor2d(values(256 * 384, 3), [256, 384]);
const b = tf.tensor2d(values(384 * 128, 4), [384, 128]);
const conv = tf.conv2d(x, w, 1, 'same');
const product = tf.matMul(a, b);
// Stock wasm has the input gradient of a convolution (not the filter's) and the matMul gradients.
const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.square(tf.conv2d(xi as tf.Tensor4D, w, 1, 'same'))))(x);
const [da, db] = tf.grads((ai: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.square(tf.matMul(ai, bi))))([a, b]);
const summary = async (t: tf.Tensor) => {
  const d = (await t.data()) as Float32Array;
  let total = 0;
  for (const v of d) total += v;
  return [d[0], d[d.length - 1], total];
};
console.log(
  JSON.stringify({
    setupThreads: setup.threads,
    backendThreads: getThreadsCount(),
    poolThreads: wasmThreadPool()?.threads ?? 1,
    conv: await summary(conv),
    product: await summary(product),
    dx: await summary(dx),
    da: await summary(da!),
    db: await summary(db!),
  }),
);
