import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { createFlowModel, createMLPBackbone, saveModelDirectory, trainFlowModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command, Option } from 'commander';
import { datasets2D, selectBackend } from '../context';
import { writeLossPlot } from '../images';
import { applyConfigFile, integer, number } from '../options';
import { createProgress } from '../progress';

export function trainTeacherCommand(): Command {
  return new Command('train-teacher')
    .description('Train a flow-matching (rectified-flow) teacher on a built-in dataset.')
    .addOption(
      new Option('--data <name>', 'dataset').choices(Object.keys(datasets2D)).default('checkerboard'),
    )
    .option('--steps <n>', 'optimiser steps', integer('--steps', 1), 4000)
    .option('--batch-size <n>', 'batch size', integer('--batch-size', 1), 512)
    .option('--width <n>', 'MLP width', integer('--width', 1), 256)
    .option('--depth <n>', 'residual MLP blocks', integer('--depth', 1), 4)
    .option('--lr <x>', 'Adam learning rate', number('--lr', 0, 1, true), 1e-3)
    .option('--ema <x>', 'EMA decay of the saved weights', number('--ema', 0, 1), 0.999)
    .addOption(
      new Option('--sigma-sampling <law>', 'training σ law')
        .choices(['uniform', 'logit-normal'])
        .default('logit-normal'),
    )
    .option('--shift <x>', 'time-warp shift recorded for sampling', number('--shift', 0, 100, true), 1)
    .option('--seed <n>', 'random seed', integer('--seed', 0), 0)
    .option('--out <dir>', 'output folder (model/, train-log.jsonl, loss.png)', 'runs/teacher')
    .addHelpText(
      'after',
      '\nExamples:\n  piflow train-teacher --data checkerboard --steps 4000 --out runs/checkerboard-teacher\n',
    )
    .action(async (options, command: Command) => {
      applyConfigFile(command);
      options = command.opts();
      const log = (line: string) => console.log(line);
      await selectBackend(command.optsWithGlobals().backend, log);
      const dataset = datasets2D[options.data]!();
      const random = createRandom(options.seed);
      const model = createFlowModel(
        createMLPBackbone({ inputDim: 2, width: options.width, depth: options.depth, seed: options.seed }),
      );
      await mkdir(options.out, { recursive: true });
      const logFile = path.join(options.out, 'train-log.jsonl');
      await writeFile(logFile, '');
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const progress = createProgress('train-teacher', options.steps);
      const losses: number[] = [];
      let lines = '';
      const result = await trainFlowModel(model, (n, r) => ({ x: dataset.sample(n, r) }), {
        steps: options.steps,
        batchSize: options.batchSize,
        learningRate: options.lr,
        warmupSteps: Math.min(200, Math.floor(options.steps / 10)),
        sigmaSampling: options.sigmaSampling,
        ema: options.ema,
        random,
        signal: abort.signal,
        onStep: async (info) => {
          losses.push(info.loss);
          lines += `${JSON.stringify({ step: info.step, loss: info.loss })}\n`;
          if (info.step % 100 === 0) {
            await appendFile(logFile, lines);
            lines = '';
          }
          progress.update(info.step, { loss: info.loss });
          return undefined;
        },
      });
      progress.stop();
      process.removeListener('SIGINT', onSigint);
      await appendFile(logFile, lines);
      result.ema?.copyTo();
      result.ema?.dispose();
      await saveModelDirectory(path.join(options.out, 'model'), model, {
        sampleShape: [2],
        sampling: { shift: options.shift },
        metadata: {
          dataset: options.data,
          trainingSteps: result.steps,
          command: `piflow train-teacher ${process.argv.slice(3).join(' ')}`.trim(),
        },
      });
      await writeLossPlot(path.join(options.out, 'loss.png'), losses);
      log(
        `${abort.signal.aborted ? 'stopped early (Ctrl-C)' : 'done'}: ${result.steps} steps at ${result.stepsPerSecond.toFixed(1)} steps/s; teacher saved to ${path.join(options.out, 'model')}`,
      );
      model.dispose();
      void tf;
      if (abort.signal.aborted) process.exitCode = 130;
    });
}
