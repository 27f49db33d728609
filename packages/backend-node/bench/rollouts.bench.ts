// The rollout benchmark of @piflow/core/testing (fused vs op-by-op GM and DX rollouts, a 4-step GM sample()
// fused vs op by op) on the Node backends that run everywhere, one run per backend: wasm (set up as
// resolveBackend does) and cpu. The WebGPU runs of the same cases: pnpm --filter @piflow/backend-webgpu bench.
// Run: pnpm --filter @piflow/backend-node bench:rollouts   (PIFLOW_BENCH_BACKENDS=wasm limits the backends)
import '@tensorflow/tfjs-backend-cpu';
import { benchmarkRollouts } from '@piflow/core/testing/benchmark';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { setupWasm } from '../src/index';

const backends = (process.env.PIFLOW_BENCH_BACKENDS ?? 'wasm,cpu').split(',').map((b) => b.trim());
for (const backend of backends) {
  if (backend === 'wasm') await setupWasm();
  if (!(await tf.setBackend(backend))) throw new Error(`Backend '${backend}' could not be set up.`);
  await tf.ready();
  console.log(`tfjs ${tf.getBackend()} in Node ${process.version}:`);
  await benchmarkRollouts({ gm, dx, log: (line) => console.log(`  ${line}`) });
}
