// GroupNorm forward and backward (medians, summed for the second column) at the MNIST U-Net's shapes (batch 48, 8 groups), in one run:
// composed tfjs ops on wasm (what the layer would cost without fused kernels), the fused kernels' JS passes (on
// the cpu backend, whose tensors are JS arrays) and the fused kernels' WebAssembly SIMD passes (wasm backend).
// Run: pnpm --filter @piflow/models bench:group-norm
//
// Expected before measuring: the JS passes cost ≈ 4 ns per element (a profile of MNIST sampling: ≈ 10 ms per
// [100, 28, 28, 32] call); four-lane SIMD in the heap with no copies should be ≈ 8–10× faster.
import { createRequire } from 'node:module';
import path from 'node:path';
import { createRandom, registerGradients } from '@piflow/core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { composedGroupNorm, groupNormOp } from '../src/group-norm';

const require = createRequire(import.meta.url);
let dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
while (!dir.endsWith(`${path.sep}dist`) && dir !== path.dirname(dir)) dir = path.dirname(dir);
setWasmPaths(`${dir}${path.sep}`);
await registerGradients();
const G = 8;
const REPEATS = 7;
const shapes = [
  [48, 28, 28, 32],
  [48, 14, 14, 64],
  [48, 7, 7, 128],
];

/** Median milliseconds of `fn` over REPEATS runs after two warm-ups (outputs read back). */
async function median(fn: () => tf.Tensor | tf.Tensor[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < REPEATS + 2; i++) {
    const started = performance.now();
    const out = fn();
    for (const t of Array.isArray(out) ? out : [out]) await t.data();
    if (i >= 2) times.push(performance.now() - started);
    tf.dispose(out);
  }
  return times.sort((a, b) => a - b)[REPEATS >> 1]!;
}

const rows: string[] = [];
for (const shape of shapes) {
  const C = shape[3]!;
  const values = createRandom(0).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)));
  const timings: Record<string, [number, number]> = {};
  for (const [label, backend, op] of [
    ['composed tfjs ops (wasm)', 'wasm', composedGroupNorm],
    ['fused, JS passes (cpu)', 'cpu', groupNormOp],
    ['fused, SIMD passes (wasm)', 'wasm', groupNormOp],
  ] as const) {
    await tf.setBackend(backend);
    const x = tf.tensor(values, shape);
    const scale = tf.ones([C]);
    const shift = tf.zeros([C]);
    const dy = tf.onesLike(x);
    const forward = await median(() => op(x, scale, shift, G));
    // The backward pass alone: the fused kernel called directly; the composed ops through autodiff (a vjp
    // with dy, whose extra multiply and sum are small next to the ~15 passes of the composed layer).
    const backward = await median(() =>
      op === composedGroupNorm
        ? tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(op(a, b, c, G), dy)))([
            x,
            scale,
            shift,
          ])
        : (tf.engine().runKernel('PiflowGroupNormGrad', { dy, x, scale }, { groups: G }) as tf.Tensor[]),
    );
    const both = forward + backward;
    timings[label] = [forward, both];
    tf.dispose([x, scale, shift, dy]);
  }
  const simd = timings['fused, SIMD passes (wasm)']!;
  for (const [label, [forward, both]] of Object.entries(timings)) {
    rows.push(
      `| [${shape.join(', ')}] | ${label} | ${forward.toFixed(1)} | ${both.toFixed(1)} | ${(forward / simd[0]).toFixed(1)}× / ${(both / simd[1]).toFixed(1)}× |`,
    );
  }
}
console.log(
  `GroupNorm, ${G} groups, median of ${REPEATS}; Node ${process.version}, tfjs ${tf.version_core}\n`,
);
console.log('| x | implementation | forward ms | forward + backward ms | vs SIMD (fwd / both) |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
