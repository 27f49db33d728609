// pnpm bench (Node + Dawn on this machine's software GPU), then the same cases in headless Chromium.
import { existsSync, readFileSync } from 'node:fs';
import { benchmarkRollouts } from '@piflow/core/testing/benchmark';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { setupWebGPU } from '../src/index';

/** Linux's aggregate CPU counters (/proc/stat): [steal, total] jiffies, or undefined elsewhere. */
function cpuTimes(): [number, number] | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return [fields[7] ?? 0, fields.slice(0, 8).reduce((a, b) => a + b, 0)];
}

await setupWebGPU();
const backend = tf.backend() as unknown as { adapterInfo?: { description?: string } };
console.log(
  `tfjs ${tf.getBackend()} in Node ${process.version} through Dawn (webgpu 0.6.2): ${backend.adapterInfo?.description ?? ''}`,
);
/** The share of CPU time the hypervisor took between two cpuTimes() readings, in %. */
const stealPercent = (before: [number, number], after: [number, number]) =>
  (100 * (after[0] - before[0])) / Math.max(1, after[1] - before[1]);

// On a virtual machine the hypervisor can take CPU time away (steal): llvmpipe's threads then wait, and the
// wall-clock figures grow while the CPU figures do not. Each measurement reports the steal during its timed
// repeats (/proc/stat counts in 10 ms ticks, so short measurements read coarsely).
const stealProbe = () => {
  const before = cpuTimes();
  return () => {
    const after = cpuTimes();
    return before && after ? `steal ${stealPercent(before, after).toFixed(0)} %` : undefined;
  };
};
const before = cpuTimes();
await benchmarkRollouts({ gm, dx, log: (line) => console.log(`  ${line}`), probe: stealProbe });
const after = cpuTimes();
if (before && after) {
  console.log(
    `  CPU steal (time the hypervisor took from this VM) during the whole run: ${stealPercent(before, after).toFixed(1)} %`,
  );
}
