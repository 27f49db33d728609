// pnpm bench (Node + Dawn on this machine's software GPU), then the same cases in headless Chromium.
import * as tf from '@tensorflow/tfjs-core';
import { setupWebGPU } from '../src/index';
import { runBench } from './cases';

await setupWebGPU();
const backend = tf.backend() as unknown as { adapterInfo?: { description?: string } };
console.log(
  `tfjs ${tf.getBackend()} in Node ${process.version} through Dawn (webgpu 0.6.2): ${backend.adapterInfo?.description ?? ''}`,
);
await runBench((line) => console.log(`  ${line}`));
