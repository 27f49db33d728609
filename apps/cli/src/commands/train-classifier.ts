import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { loadMnist } from '@piflow/datasets';
import { createDigitClassifier, digitAccuracyAsync, trainDigitClassifier } from '@piflow/eval';
import { acquireRunFolder, type RunFolder, RunFolderError } from '@piflow/trainer';
import { Command } from 'commander';
import { saveClassifier } from '../classifier-files';
import { prepareTraining, selectBackend } from '../context';
import { UsageError } from '../errors';
import { writeLossPlot } from '../images';
import { applyConfigFile, commandLine, integer, number, renamedOption } from '../options';
import { createProgress } from '../progress';
import { readAhead } from '../reads';

export function trainClassifierCommand(): Command {
  return new Command('train-classifier')
    .description(
      'Train the MNIST digit classifier whose features give the image metrics (Fréchet distance, class accuracy, diversity).',
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
    .option('--overwrite', 'replace a previous classifier in <out>', false)
    .option(
      '--out <dir>',
      'output folder (classifier.json, weights.bin, train-log.jsonl, loss.png)',
      'runs/classifier',
    )
    .addHelpText(
      'after',
      '\nExample:\n  piflow train-classifier --iterations 1500 --out runs/mnist-classifier\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals().backend, (l) => console.log(l));
      await prepareTraining();
      const mnist = loadMnist();
      let folder: RunFolder;
      try {
        folder = await acquireRunFolder(o.out, {
          runFiles: ['classifier.json', 'weights.bin', 'train-log.jsonl', 'loss.png'],
          overwrite: o.overwrite,
          flags: { resume: null, overwrite: '--overwrite' },
        });
      } catch (error) {
        if (error instanceof RunFolderError) {
          throw new UsageError(error.message);
        }
        throw error;
      }
      const classifier = createDigitClassifier({ seed: o.seed });
      const logFile = path.join(o.out, 'train-log.jsonl');
      await writeFile(logFile, '');
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const progress = createProgress('train-classifier', o.iterations);
      let lines = '';
      const result = await trainDigitClassifier(classifier, mnist.train, {
        steps: o.iterations,
        batchSize: o.batchSize,
        learningRate: o.lr,
        random: createRandom(o.seed),
        signal: abort.signal,
        onStep: ({ step, loss }) => {
          lines += `${JSON.stringify({ step, loss })}\n`;
          progress.update(step, { loss });
        },
      });
      progress.stop();
      process.removeListener('SIGINT', onSigint);
      await appendFile(logFile, lines);
      // Every read is asynchronous: tfjs's WebGPU backend cannot read GPU memory synchronously in Node.
      const trainAccuracy = await digitAccuracyAsync(classifier, mnist.train);
      const heldOutAccuracy = await digitAccuracyAsync(classifier, mnist.heldOut);
      await readAhead(classifier.variables);
      await saveClassifier(o.out, classifier, {
        dataset: 'mnist',
        trainingSteps: result.steps,
        trainAccuracy,
        heldOutAccuracy,
        command: commandLine(),
      });
      await writeLossPlot(path.join(o.out, 'loss.png'), Array.from(result.losses), {
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
