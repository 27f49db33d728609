import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { loadMnist } from '@piflow/datasets';
import { createDigitClassifier, digitAccuracy, trainDigitClassifier } from '@piflow/eval';
import { Command } from 'commander';
import { saveClassifier } from '../classifier-files';
import { selectBackend } from '../context';
import { writeLossPlot } from '../images';
import { applyConfigFile, commandLine, integer, number } from '../options';
import { createProgress } from '../progress';

export function trainClassifierCommand(): Command {
  return new Command('train-classifier')
    .description(
      'Train the MNIST digit classifier whose features give the image metrics (Fréchet distance, class accuracy, diversity).',
    )
    .option('--steps <n>', 'optimiser steps', integer('--steps', 1), 1500)
    .option('--batch-size <n>', 'batch size', integer('--batch-size', 1), 64)
    .option('--lr <x>', 'Adam learning rate (cosine-decayed)', number('--lr', 0, 1, true), 2e-3)
    .option('--seed <n>', 'random seed', integer('--seed', 0), 0)
    .option(
      '--out <dir>',
      'output folder (classifier.json, weights.bin, train-log.jsonl, loss.png)',
      'runs/classifier',
    )
    .addHelpText('after', '\nExample:\n  piflow train-classifier --steps 1500 --out runs/mnist-classifier\n')
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals().backend, (l) => console.log(l));
      const mnist = loadMnist();
      const classifier = createDigitClassifier({ seed: o.seed });
      await mkdir(o.out, { recursive: true });
      const logFile = path.join(o.out, 'train-log.jsonl');
      await writeFile(logFile, '');
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const progress = createProgress('train-classifier', o.steps);
      let lines = '';
      const result = await trainDigitClassifier(classifier, mnist.train, {
        steps: o.steps,
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
      const trainAccuracy = digitAccuracy(classifier, mnist.train);
      const heldOutAccuracy = digitAccuracy(classifier, mnist.heldOut);
      await saveClassifier(o.out, classifier, {
        dataset: 'mnist',
        trainingSteps: result.steps,
        trainAccuracy,
        heldOutAccuracy,
        command: commandLine(),
      });
      await writeLossPlot(path.join(o.out, 'loss.png'), Array.from(result.losses));
      console.log(
        `${abort.signal.aborted ? 'stopped early (Ctrl-C)' : 'done'}: ${result.steps} steps at ${result.stepsPerSecond.toFixed(1)} steps/s; accuracy ${(100 * trainAccuracy).toFixed(2)} % train, ${(100 * heldOutAccuracy).toFixed(2)} % held out; saved to ${o.out}`,
      );
      classifier.dispose();
      if (abort.signal.aborted) process.exitCode = 130;
    });
}
