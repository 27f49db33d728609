// The filter gradient of the MNIST U-Net's 3×3 convolutions (batch 48) on the wasm backend, one thread, in one
// run: the SIMD kernel that Conv2DBackpropFilter runs now (@piflow/core/wasm) against the route it replaced —
// x transposed to [C, H, W, N] convolved with dy transposed to [H, W, N, Co] as the filter by XNNPACK, the
// result transposed back — with the values compared. Medians of 7 runs after 2 warm-ups.
// Run: pnpm --filter @piflow/models bench:filter-grad
//
// Expected before measuring: the conv route reduces over N·H·W inputs per output with a 28 × 28 "filter" and a
// 3 × 3 output, which XNNPACK is not built for: ≈ 2× the forward convolution's time; a register-tiled outer
// product per tap should run near the forward convolution's speed (≈ 30 GFLOP/s on one thread).
import { createRandom, registerGradients } from '@piflow/core';
import { relativeError, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmTrainingKernels } from '../src/wasm-training-kernels';

await registerGradients();
await useBackend('wasm');
registerWasmTrainingKernels();
const REPEATS = 7;

/** Median milliseconds of `fn` over REPEATS runs after two warm-ups (output read back). */
async function median(fn: () => tf.Tensor): Promise<{ ms: number; values: Float32Array }> {
  const times: number[] = [];
  let values = new Float32Array();
  for (let i = 0; i < REPEATS + 2; i++) {
    const started = performance.now();
    const out = fn();
    values = (await out.data()) as Float32Array;
    if (i >= 2) times.push(performance.now() - started);
    out.dispose();
  }
  return { ms: times.sort((a, b) => a - b)[REPEATS >> 1]!, values };
}

const rows: string[] = [];
const random = createRandom(0);
for (const [N, H, C, Co] of [
  [48, 28, 32, 32],
  [48, 28, 64, 32],
  [48, 14, 64, 64],
  [48, 14, 128, 64],
  [48, 7, 128, 128],
]) {
  const x = random.normalTensor([N!, H!, H!, C!]) as tf.Tensor4D;
  const dy = random.normalTensor([N!, H!, H!, Co!]) as tf.Tensor4D;
  const simd = await median(
    () =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x, dy },
          { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, C!, Co!] },
        ) as tf.Tensor,
  );
  const conv = await median(() =>
    tf.tidy(() => {
      const xt = tf.transpose(x, [3, 1, 2, 0]);
      const dyt = tf.transpose(dy, [1, 2, 0, 3]);
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ];
      return tf.transpose(tf.conv2d(xt as tf.Tensor4D, dyt as tf.Tensor4D, 1, pad), [1, 2, 0, 3]);
    }),
  );
  const gflop = (2 * N! * H! * H! * 9 * C! * Co!) / 1e9;
  rows.push(
    `| [${N}, ${H}, ${H}, ${C}] → ${Co} | ${conv.ms.toFixed(1)} ms · ${(gflop / (conv.ms / 1000)).toFixed(1)} | ${simd.ms.toFixed(1)} ms · ${(gflop / (simd.ms / 1000)).toFixed(1)} | ${(conv.ms / simd.ms).toFixed(2)}× | ${relativeError(simd.values, conv.values).toExponential(1)} |`,
  );
  tf.dispose([x, dy]);
}
console.log(
  `Conv2DBackpropFilter, 3×3 'same', wasm one thread (Node ${process.version}); median of ${REPEATS}, GFLOP/s after the time`,
);
console.log(
  '| x → output channels | transposes + XNNPACK conv | SIMD kernel | speed-up | relative difference |',
);
console.log('|---|---|---|---|---|');
for (const row of rows) console.log(row);
