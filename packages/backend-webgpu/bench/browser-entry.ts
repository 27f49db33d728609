// The benchmark page's script (bundled by chromium.bench.ts): WebGPU from navigator.gpu, then bench cases.

import { benchmarkRollouts } from '@piflow/core/testing/benchmark';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { setupWebGPU } from '../src/index';

// Installed by chromium.bench.ts (page.exposeFunction) before the page loads.
const report = (line: string) =>
  (globalThis as unknown as { piflowBench: (line: string) => Promise<void> }).piflowBench(line);
try {
  await setupWebGPU();
  const info = (tf.backend() as unknown as { adapterInfo?: { description?: string; architecture?: string } })
    .adapterInfo;
  report(
    `tfjs ${tf.getBackend()} in ${navigator.userAgent.match(/Chrom\w+\/[\d.]+/)?.[0]}: ${info?.description ?? ''}`,
  );
  await benchmarkRollouts({ gm, dx, log: (line) => report(`  ${line}`) });
  report('done');
} catch (error) {
  report(`error: ${(error as Error).stack ?? error}`);
}
