import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cosineDecay, createRandom, EMA } from '@piflow/core';
import { imageDatasetNames, loadImageDataset } from '@piflow/datasets';
import {
  createFlowModel,
  createMLPBackbone,
  createUNetBackbone,
  type FlowBatch,
  flowModelOptimizer,
  getWeights,
  isFlowModel,
  saveModelDirectory,
  setWeights,
  trainFlowModel,
} from '@piflow/models';
import type { RunFolder } from '@piflow/trainer';
import { Command, Option } from 'commander';
import { datasets2D, loadAnyModel, prepareTraining, selectBackend } from '../context';
import { UsageError } from '../errors';
import { writeLossPlot } from '../images';
import { checkMemory, sampleSize } from '../memory';
import {
  applyConfigFile,
  checkpointEveryOption,
  commandLine,
  emaDecay,
  integer,
  integerList,
  number,
  overwriteOption,
  renamedOption,
  resumeOption,
} from '../options';
import { createProgress } from '../progress';
import { takeRunFolder } from '../run-folder';
import { truncateLog } from '../run-log';
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from '../training-checkpoint';

export function trainTeacherCommand(): Command {
  return new Command('train-teacher')
    .description('Train a flow-matching (rectified-flow) teacher on a built-in dataset.')
    .addOption(
      new Option('--data <name>', 'dataset')
        .choices([...Object.keys(datasets2D), ...imageDatasetNames])
        .default('checkerboard'),
    )
    .option('--iterations <n>', 'training iterations (optimiser steps)', integer('--iterations', 1), 4000)
    .addOption(
      renamedOption(
        '--steps <n>',
        '--steps is now --iterations (training iterations).',
        'use --iterations <n>',
      ),
    )
    .option(
      '--batch-size <n>',
      'batch size (default 512 for 2-D data, 64 for images)',
      integer('--batch-size', 1),
    )
    .option('--width <n>', 'MLP width (2-D data)', integer('--width', 1), 256)
    .option('--depth <n>', 'residual MLP blocks (2-D data)', integer('--depth', 1), 4)
    .option(
      '--channels <list>',
      'U-Net channels per level (image data)',
      integerList('--channels'),
      [32, 64, 128],
    )
    .addOption(
      new Option('--norm <kind>', 'U-Net normalisation (image data): GroupNorm in every block, or none')
        .choices(['group', 'none'])
        .default('group'),
    )
    .option(
      '--label-dropout <p>',
      'probability of training with the null label, for classifier-free guidance (image data)',
      number('--label-dropout', 0, 1),
      0.1,
    )
    .option(
      '--guidance-scale <x>',
      'guidance scale recorded in the model as its default for sampling and distillation (image data)',
      number('--guidance-scale', 1),
      2.5,
    )
    .option('--lr <x>', 'Adam learning rate', number('--lr', 0, 1, true), 1e-3)
    .addOption(
      new Option(
        '--lr-decay <kind>',
        'learning-rate schedule after warm-up: constant, or a cosine decay to 10 % at the last iteration',
      )
        .choices(['constant', 'cosine'])
        .default('constant'),
    )
    .option('--ema <x>', 'EMA decay of the saved weights, in [0, 1)', emaDecay, 0.999)
    .addOption(
      new Option('--sigma-sampling <law>', 'training σ law')
        .choices(['uniform', 'logit-normal'])
        .default('logit-normal'),
    )
    .option('--shift <x>', 'time-warp shift recorded for sampling', number('--shift', 0, 100, true), 1)
    .option('--seed <n>', 'random seed', integer('--seed', 0), 0)
    .option(
      '--init <dir>',
      'start from the weights of a teacher folder of the same architecture (continue training)',
    )
    .addOption(checkpointEveryOption(500))
    .addOption(resumeOption())
    .addOption(overwriteOption())
    .option('--out <dir>', 'output folder (model/, checkpoints/, train-log.jsonl, loss.png)', 'runs/teacher')
    .addHelpText(
      'after',
      '\nExamples:\n  piflow train-teacher --data checkerboard --iterations 4000 --out runs/checkerboard-teacher\n' +
        '  piflow train-teacher --data mnist --iterations 3000 --out runs/mnist-teacher   # class-conditional U-Net\n' +
        '  piflow train-teacher --data fashion-mnist --iterations 3000 --out runs/fashion-teacher\n',
    )
    .action(async (options, command: Command) => {
      applyConfigFile(command);
      options = command.opts();
      const log = (line: string) => console.log(line);
      await selectBackend(command.optsWithGlobals(), log);
      await prepareTraining();
      const images = imageDatasetNames.includes(options.data);
      const random = createRandom(options.seed);
      let data: (n: number, r: typeof random) => FlowBatch;
      let model: ReturnType<typeof createFlowModel>;
      let sampleShape: number[];
      if (images) {
        const dataset = loadImageDataset(options.data);
        data = (n, r) => dataset.batch(n, r, 'train');
        model = createFlowModel(
          createUNetBackbone({
            channels: options.channels,
            norm: options.norm,
            inChannels: dataset.imageShape[2],
            numClasses: dataset.classNames.length,
            seed: options.seed,
          }),
        );
        sampleShape = [...dataset.imageShape];
      } else {
        const dataset = datasets2D[options.data]!();
        data = (n, r) => ({ x: dataset.sample(n, r) });
        model = createFlowModel(
          createMLPBackbone({ inputDim: 2, width: options.width, depth: options.depth, seed: options.seed }),
        );
        sampleShape = [2];
      }
      const batchSize = options.batchSize ?? (images ? 64 : 512);
      checkMemory(
        '--batch-size',
        batchSize,
        batchSize * sampleSize(sampleShape) * 4 * (images ? 2000 : 200),
        'one training step (activations and their gradients)',
      );
      let initialSteps = 0;
      if (options.init) {
        const { model: start, manifest } = await loadAnyModel(options.init);
        const names = start.variableNames.join(',');
        if (
          !isFlowModel(start) ||
          names !== model.variableNames.join(',') ||
          start.variables.some((v, i) => v.shape.join() !== model.variables[i]!.shape.join())
        ) {
          start.dispose();
          model.dispose();
          throw new UsageError(
            `--init ${options.init} is not a teacher with this architecture.`,
            'pass a folder written by `piflow train-teacher` with the same --data and network options.',
          );
        }
        setWeights(model.variables, getWeights(start.variables));
        initialSteps = Number(manifest.metadata?.trainingSteps ?? 0);
        start.dispose();
      }
      let folder: RunFolder;
      try {
        folder = await takeRunFolder(options.out, {
          runFiles: ['model', 'checkpoints', 'train-log.jsonl', 'loss.png'],
          resume: options.resume,
          overwrite: options.overwrite,
        });
      } catch (error) {
        model.dispose();
        throw error;
      }
      const logFile = path.join(options.out, 'train-log.jsonl');
      const optimizer = flowModelOptimizer(model, {
        learningRate: options.lr,
        warmupSteps: Math.min(200, Math.floor(options.iterations / 10)),
        ...(options.lrDecay === 'cosine' ? { schedule: cosineDecay(options.iterations, 0.1) } : {}),
      });
      const ema = new EMA(model.variables, { decay: options.ema, biasCorrection: true });
      let startStep = 0;
      let trainingRandom = random;
      const losses: number[] = [];
      if (options.resume) {
        const restored = await loadTrainingCheckpoint(
          'teacher',
          options.out,
          { variables: model.variables, ema, optimizer },
          (message) => console.warn(`warning: ${message}`),
        );
        if (restored) {
          startStep = restored.step;
          trainingRandom = restored.random;
          for (const l of await truncateLog<{ step: number; loss: number }>(logFile, startStep)) {
            losses.push(l.loss);
          }
          log(`resumed at step ${startStep}`);
        }
      }
      if (startStep === 0) await writeFile(logFile, '');
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const progress = createProgress('train-teacher', options.iterations);
      const checkpoint = (step: number) =>
        saveTrainingCheckpoint('teacher', options.out, {
          step,
          random: trainingRandom,
          variables: model.variables,
          ema,
          optimizer,
        });
      let lines = '';
      let lastStep = startStep;
      const result = await trainFlowModel(model, data, {
        steps: Math.max(0, options.iterations - startStep),
        startStep,
        batchSize,
        ...(images ? { labelDropout: options.labelDropout } : {}),
        optimizer,
        sigmaSampling: options.sigmaSampling,
        ema,
        random: trainingRandom,
        signal: abort.signal,
        onStep: async (info) => {
          losses.push(info.loss);
          lastStep = info.step;
          lines += `${JSON.stringify({ step: info.step, loss: info.loss })}\n`;
          if (info.step % 100 === 0) {
            await appendFile(logFile, lines);
            lines = '';
          }
          if (info.step % options.checkpointEvery === 0) {
            await appendFile(logFile, lines);
            lines = '';
            await checkpoint(info.step);
          }
          progress.update(info.step, { loss: info.loss });
          return undefined;
        },
      });
      progress.stop();
      process.removeListener('SIGINT', onSigint);
      await appendFile(logFile, lines);
      if (abort.signal.aborted && lastStep > startStep) await checkpoint(lastStep);
      optimizer.dispose();
      ema.copyTo();
      ema.dispose();
      await saveModelDirectory(path.join(options.out, 'model'), model, {
        sampleShape,
        sampling: { shift: options.shift, ...(images ? { guidanceScale: options.guidanceScale } : {}) },
        metadata: {
          dataset: options.data,
          trainingSteps: initialSteps + startStep + result.steps,
          ...(options.init ? { initializedFrom: options.init } : {}),
          command: commandLine(),
        },
      });
      await writeLossPlot(path.join(options.out, 'loss.png'), losses, {
        title: `flow-matching loss: ${options.data} teacher`,
      });
      log(
        `${abort.signal.aborted ? 'stopped early (Ctrl-C); checkpoint saved' : 'done'}: ${startStep + result.steps} iterations at ${result.stepsPerSecond.toFixed(1)} iterations/s; teacher saved to ${path.join(options.out, 'model')}`,
      );
      model.dispose();
      await folder.release();
      if (abort.signal.aborted) process.exitCode = 130;
    });
}
