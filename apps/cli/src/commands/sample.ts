import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom, type PolicyFamily } from '@piflow/core';
import { isFlowModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { loadAnyModel, selectBackend } from '../context';
import { UsageError } from '../errors';
import { collectPairs, parseOptionPairs } from '../families';
import { writeDensityPanels, writeImageGrid } from '../images';
import { writeNpy } from '../npy';
import { applyConfigFile, integer, labelList, number } from '../options';
import { sampleModel } from '../sampling';

/** `--sample-option` pairs (and the `--temperature` shorthand) parsed against the student family's declarations. */
export function samplingOptions(
  family: PolicyFamily,
  o: { sampleOption?: string[]; temperature?: string },
): Record<string, number | string> {
  const pairs = [
    ...(o.sampleOption ?? []),
    ...(o.temperature !== undefined ? [`temperature=${o.temperature}`] : []),
  ];
  return parseOptionPairs(
    o.temperature !== undefined && !o.sampleOption ? '--temperature' : '--sample-option',
    pairs,
    family.sampling?.options,
    family.name,
  );
}

export function sampleCommand(): Command {
  return new Command('sample')
    .description(
      'Generate samples from a student (few-step) or a teacher (Euler ODE) and write PNG / .npy / JSON.',
    )
    .option('--model <spec>', 'a model folder (student or teacher) or checkerboard', 'checkerboard')
    .option('--nfe <n>', 'student steps (default: what it was trained for)', integer('--nfe', 1, 1024))
    .option('--steps <n>', 'Euler steps when the model is a teacher', integer('--steps', 1, 4096), 32)
    .option('-n, --count <n>', 'number of samples', integer('--count', 1), 2000)
    .option('--seed <n>', 'noise seed (same seed, same samples)', integer('--seed', 0), 0)
    .option('--plugin <package or path>', 'load a policy-family plugin package (repeatable)', collectPairs)
    .option(
      '--sample-option <name=value>',
      "a sampling option of the student's family, e.g. temperature=auto (repeatable)",
      collectPairs,
    )
    .option('--temperature <x>', "shorthand for --sample-option temperature=<x> (a number or 'auto')")
    .option('--labels <list>', 'class labels cycled over the samples (class-conditional models)', labelList)
    .option(
      '--guidance-scale <x>',
      'classifier-free guidance for class-conditional teachers (default: the one recorded with it)',
      number('--guidance-scale', 1),
    )
    .option('--out <file.png>', 'image: a density plot (2-D) or an image grid', 'samples.png')
    .option('--npy <file>', 'also write the raw samples as float32 .npy')
    .option('--json <file>', 'also write the raw samples as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  piflow sample --model runs/gm4/model --seed 1 --out gm4.png --npy gm4.npy\n  piflow sample --model checkerboard --steps 64 --out teacher.png\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals().backend, (l) => console.log(l));
      const { model, manifest, families } = await loadAnyModel(o.model, o.plugin ?? []);
      const familyOptions = isFlowModel(model) ? {} : samplingOptions(families.get(model.family), o);
      if (o.labels && manifest.backbone.config.numClasses === undefined) {
        throw new UsageError('--labels was given but this model is not class-conditional.', 'drop --labels.');
      }
      const shape = [o.count, ...manifest.sampleShape];
      const noise = createRandom(o.seed).normalTensor(shape);
      const { x, nfe, seconds } = await sampleModel(model, manifest, noise, {
        nfe: o.nfe,
        teacherSteps: o.steps,
        familyOptions,
        families,
        ...(o.guidanceScale !== undefined ? { guidanceScale: o.guidanceScale } : {}),
        ...(o.labels ? { labels: o.labels } : {}),
      });
      const values = Float32Array.from(x.dataSync());
      if (manifest.sampleShape.length === 1 && manifest.sampleShape[0] === 2) {
        await writeDensityPanels(o.out, [{ title: o.model, points: values }]);
      } else if (manifest.sampleShape.length === 3) {
        await writeImageGrid(o.out, values, shape);
      }
      if (o.npy) await writeNpy(o.npy, values, shape);
      if (o.json) {
        await mkdir(path.dirname(path.resolve(o.json)), { recursive: true });
        await writeFile(o.json, JSON.stringify({ shape, nfe, values: Array.from(values) }));
      }
      console.log(
        `${o.count} samples with ${nfe} network evaluations in ${seconds.toFixed(2)} s → ${o.out}${o.npy ? `, ${o.npy}` : ''}${o.json ? `, ${o.json}` : ''}`,
      );
      tf.dispose([x, noise]);
      model.dispose();
    });
}
