import { createRandom, rollout } from '@piflow/core';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { selectBackend } from '../context';
import { applyConfigFile, integer } from '../options';

/** Fused vs op-by-op GM rollout on the active backend, in one run. */
export function benchCommand(): Command {
  return new Command('bench')
    .description('Benchmark the policy rollout (fused kernel vs op by op) on the chosen backend.')
    .option('--positions <n>', 'positions (B × pixels)', integer('--positions', 1), 2048)
    .option('--components <n>', 'GM components K', integer('--components', 1), 8)
    .option('--channels <n>', 'channels C', integer('--channels', 1), 16)
    .option('--substeps <n>', 'substeps', integer('--substeps', 1), 128)
    .option('--repeats <n>', 'timed repeats', integer('--repeats', 1), 5)
    .addHelpText('after', '\nExample:\n  piflow bench --backend wasm\n')
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      const backend = await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      const B = 2;
      const P = Math.max(1, Math.floor(o.positions / B));
      const random = createRandom(0);
      const shape = [B, P, o.channels];
      const xSrc = random.normalTensor(shape);
      const params = {
        space: 'u' as const,
        means: random.normalTensor([B, P, o.components, o.channels]),
        logweights: random.normalTensor([B, P, o.components]),
        logstd: tf.fill([B], -1) as tf.Tensor1D,
      };
      const policy = gm.create(params, xSrc, 1);
      // Each timed run includes reading the result back, asynchronously (tfjs's WebGPU backend cannot read GPU
      // memory synchronously in Node).
      const run = async (fused: boolean) => {
        const y = rollout(policy, xSrc, { sigmaSrc: 1, sigmaDst: 0, substeps: o.substeps, fused });
        await y.data();
        y.dispose();
      };
      const time = async (fused: boolean, repeats: number) => {
        await run(fused); // warm-up: kernel compilation, first allocations
        const started = performance.now();
        for (let i = 0; i < repeats; i++) await run(fused);
        return (performance.now() - started) / repeats;
      };
      const fused = await time(true, o.repeats);
      const opByOp = await time(false, Math.max(1, Math.min(o.repeats, backend === 'cpu' ? 1 : o.repeats)));
      console.log(
        `GM rollout, ${o.substeps} substeps on [${B} × ${P} positions, K = ${o.components}, C = ${o.channels}], backend ${backend}:`,
      );
      console.log(
        `  op by op ${opByOp.toFixed(1)} ms   fused ${fused.toFixed(1)} ms   ratio ${(opByOp / fused).toFixed(1)}×`,
      );
      policy.dispose();
      tf.dispose([xSrc, params.means, params.logweights, params.logstd]);
    });
}
