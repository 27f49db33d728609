import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { imageDatasetNames, loadImageDataset } from '@piflow/datasets';
import {
  createDigitClassifier,
  digitAccuracyAsync,
  digitClassifierOptimizer,
  trainDigitClassifier,
} from '@piflow/eval';
import { Command, Option } from 'commander';
import { saveClassifier } from '../classifier-files';
import { prepareTraining, selectBackend } from '../context';
import { writeLossPlot } from '../images';
import {
  applyConfigFile,
  checkpointEveryOption,
  commandLine,
  integer,
  number,
  overwriteOption,
  renamedOption,
  resumeOption,
} from '../options';
import { createProgress } from '../progress';
import { readAhead } from '../reads';
import { takeRunFolder } from '../run-folder';
import { truncateLog } from '../run-log';
import { loadTrainingCheckpoint, saveTrainingCheckpoint } from '../training-checkpoint';

export function trainClassifierCommand(): Command {
  return new Command('train-classifier')
    .description(
      'Train the image classifier whose features give the image metrics (Fréchet distance, class accuracy, diversity) on MNIST or Fashion-MNIST.',
    )
    .addOption(
      new Option('--data <name>', 'labelled image set').choices([...imageDatasetNames]).default('mnist'),
    )
    .option('--iterations <n>', 'training iterations (optimiser steps)', integer('--iterations', 1), 1500)
    .addOption(
      renamedOption(
        '--steps <n>',
        '--steps is now --iterations (training iterations).',
        'use --iterations <n>',
      ),
    )
    .option('--batch-size <n>', 'batch size', integer('--batch-size', 1), 64)
    .option('--lr <x>', 'Adam learning rate (cosine-decayed)', number('--lr', 0, 1, true), 2e-3)
    .option('--seed <n>', 'random seed', integer('--seed', 0), 0)
    .addOption(checkpointEveryOption(500))
    .addOption(resumeOption())
    .addOption(overwriteOption())
    .option(
      '--out <dir>',
      'output folder (classifier.json, weights.bin, train-log.jsonl, loss.png)',
      'runs/classifier',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  piflow train-classifier --iterations 1500 --out runs/mnist-classifier\n' +
        '  piflow train-classifier --data fashion-mnist --iterations 3000 --out runs/fashion-classifier\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      await prepareTraining();
      const images = loadImageDataset(o.data);
      const folder = await takeRunFolder(o.out, {
        runFiles: ['classifier.json', 'weights.bin', 'checkpoints', 'train-log.jsonl', 'loss.png'],
        resume: o.resume,
        overwrite: o.overwrite,
      });
      const classifier = createDigitClassifier({ seed: o.seed });
      const logFile = path.join(o.out, 'train-log.jsonl');
      const optimizer = digitClassifierOptimizer(classifier, { steps: o.iterations, learningRate: o.lr });
      let random = createRandom(o.seed);
      let startStep = 0;
      const losses: number[] = [];
      if (o.resume) {
        const restored = await loadTrainingCheckpoint(
          'classifier',
          o.out,
          { variables: classifier.variables, optimizer },
          (message) => console.warn(`warning: ${message}`),
        );
        if (restored) {
          startStep = restored.step;
          random = restored.random;
          console.log(`resumed at step ${startStep}`);
        }
        for (const l of await truncateLog<{ step: number; loss: number }>(logFile, startStep)) {
          losses.push(l.loss);
        }
      } else await writeFile(logFile, '');
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const progress = createProgress('train-classifier', o.iterations);
      const checkpoint = (step: number) =>
        saveTrainingCheckpoint('classifier', o.out, {
          step,
          random,
          variables: classifier.variables,
          optimizer,
        });
      let lines = '';
      const result = await trainDigitClassifier(classifier, images.train, {
        steps: o.iterations,
        startStep,
        optimizer,
        batchSize: o.batchSize,
        learningRate: o.lr,
        random,
        signal: abort.signal,
        onStep: async ({ step, loss }) => {
          losses.push(loss);
          lines += `${JSON.stringify({ step, loss })}\n`;
          if (step % o.checkpointEvery === 0) {
            // the log lines up to a checkpoint reach the disk before it
            await appendFile(logFile, lines);
            lines = '';
            await checkpoint(step);
          }
          progress.update(step, { loss });
        },
      });
      progress.stop();
      process.removeListener('SIGINT', onSigint);
      await appendFile(logFile, lines);
      if (abort.signal.aborted && result.steps > startStep) await checkpoint(result.steps);
      optimizer.dispose();
      // Every read is asynchronous: tfjs's WebGPU backend cannot read GPU memory synchronously in Node.
      // Training accuracy on the first 10 000 training images (all of MNIST's 9 000; Fashion-MNIST has 60 000).
      const trainCount = Math.min(images.train.count, 10000);
      const trainAccuracy = await digitAccuracyAsync(classifier, {
        images: images.train.images.subarray(0, trainCount * 784),
        labels: images.train.labels.subarray(0, trainCount),
        count: trainCount,
      });
      const heldOutAccuracy = await digitAccuracyAsync(classifier, images.heldOut);
      await readAhead(classifier.variables);
      await saveClassifier(o.out, classifier, {
        dataset: o.data,
        trainingSteps: result.steps,
        trainAccuracy,
        heldOutAccuracy,
        command: commandLine(),
      });
      await writeLossPlot(path.join(o.out, 'loss.png'), losses, {
        title: 'cross-entropy loss: MNIST digit classifier',
      });
      console.log(
        `${abort.signal.aborted ? 'stopped early (Ctrl-C)' : 'done'}: ${result.steps} iterations at ${result.stepsPerSecond.toFixed(1)} iterations/s; accuracy ${(100 * trainAccuracy).toFixed(2)} % train, ${(100 * heldOutAccuracy).toFixed(2)} % held out; saved to ${o.out}`,
      );
      classifier.dispose();
      await folder.release();
      if (abort.signal.aborted) process.exitCode = 130;
    });
}
