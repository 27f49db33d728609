import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom, type PolicyFamily } from '@piflow/core';
import { isFlowModel, type StoredModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { loadAnyModel, selectBackend } from '../context';
import { UsageError } from '../errors';
import { collectPairs, parseOptionPairs } from '../families';
import { writeDensityPanels, writeImageGrid } from '../images';
import { checkMemory, sampleSize } from '../memory';
import { writeNpy } from '../npy';
import { applyConfigFile, integer, labelList, number, outputFile, stochasticity } from '../options';
import { readFloats } from '../reads';
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

/**
 * `sample` and `eval` take `--nfe` for a student's steps and `--steps` for a teacher's Euler steps: the one
 * that does not apply to the model is an error naming the other.
 */
export function checkStepOptions(
  model: StoredModel,
  spec: string,
  o: { nfe?: number; steps?: number },
): void {
  if (isFlowModel(model) && o.nfe !== undefined) {
    model.dispose();
    throw new UsageError(
      `--nfe sets a π-Flow student's steps, but ${spec} is a teacher (flow model).`,
      "use --steps <n> for the teacher's Euler steps (default 32).",
    );
  }
  if (!isFlowModel(model) && o.steps !== undefined) {
    model.dispose();
    throw new UsageError(
      `--steps sets a teacher's Euler steps, but ${spec} is a π-Flow student.`,
      "use --nfe <n> for the student's steps (default: the steps it was trained for).",
    );
  }
}

export function sampleCommand(): Command {
  return new Command('sample')
    .description(
      'Generate samples from a student (few-step) or a teacher (Euler ODE) and write PNG / .npy / JSON.',
    )
    .option(
      '--model <spec>',
      'a model folder (student or teacher), or a shipped model: checkerboard or mnist (the teachers), checkerboard/gm-4, mnist/gm-4, …',
      'checkerboard',
    )
    .option(
      '--nfe <n>',
      'steps of a π-Flow student (default: what it was trained for)',
      integer('--nfe', 1, 1024),
    )
    .option('--steps <n>', 'Euler steps of a teacher (default 32)', integer('--steps', 1, 4096))
    .option('-n, --count <n>', 'number of samples', integer('--count', 1), 2000)
    .option('--seed <n>', 'noise seed (same seed, same samples)', integer('--seed', 0), 0)
    .option('--plugin <package or path>', 'load a policy-family plugin package (repeatable)', collectPairs)
    .option(
      '--sample-option <name=value>',
      "a sampling option of the student's family, e.g. temperature=auto (repeatable)",
      collectPairs,
    )
    .option('--temperature <x>', "shorthand for --sample-option temperature=<x> (a number or 'auto')")
    .option(
      '--h <x>',
      "a student's sampler stochasticity: 0 = the ODE (default), 'inf' = re-noise fully every step",
      stochasticity,
    )
    .option(
      '--substeps <n>',
      "Euler substeps per unit raw time in a student's policy rollouts (default 128)",
      integer('--substeps', 1, 4096),
    )
    .option('--labels <list>', 'class labels cycled over the samples (class-conditional models)', labelList)
    .option(
      '--guidance-scale <x>',
      'classifier-free guidance for class-conditional teachers (default: the one recorded with it)',
      number('--guidance-scale', 1),
    )
    .option(
      '--out <file.png>',
      'PNG image: a density plot (2-D samples) or an image grid',
      outputFile('--out', ['.png']),
      'samples.png',
    )
    .option('--npy <file.npy>', 'also write the raw samples as float32 .npy', outputFile('--npy', ['.npy']))
    .option('--json <file.json>', 'also write the raw samples as JSON', outputFile('--json', ['.json']))
    .addHelpText(
      'after',
      '\nExamples:\n  piflow sample --model runs/gm4/model --seed 1 --out gm4.png --npy gm4.npy\n  piflow sample --model checkerboard --steps 64 --out teacher.png   # a teacher: --steps Euler steps\n  piflow sample --model runs/gm4/model --nfe 8 --out gm4-8.png      # a student: --nfe steps\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      const { model, manifest, families } = await loadAnyModel(o.model, o.plugin ?? []);
      checkStepOptions(model, o.model, o);
      if (isFlowModel(model) && (o.h !== undefined || o.substeps !== undefined)) {
        model.dispose();
        throw new UsageError(
          `--h and --substeps set a π-Flow student's sampler, but ${o.model} is a teacher (flow model).`,
          'drop them (a teacher samples with --steps Euler steps).',
        );
      }
      const familyOptions = isFlowModel(model) ? {} : samplingOptions(families.get(model.family), o);
      const numClasses = manifest.backbone.config.numClasses as number | undefined;
      if (o.labels && numClasses === undefined) {
        model.dispose();
        throw new UsageError('--labels was given but this model is not class-conditional.', 'drop --labels.');
      }
      const outside = (o.labels as number[] | undefined)?.find((l) => l >= numClasses!);
      if (outside !== undefined) {
        model.dispose();
        throw new UsageError(
          `--labels ${outside} is not a class of this model: it has ${numClasses} classes, 0 to ${numClasses! - 1}.`,
          `give labels between 0 and ${numClasses! - 1}.`,
        );
      }
      // policy parameters and rollout temporaries per sample (a teacher's Euler step needs less)
      checkMemory(
        '--count',
        o.count,
        o.count * sampleSize(manifest.sampleShape) * 4 * (isFlowModel(model) ? 16 : 48),
        'its samples and their policies',
      );
      const shape = [o.count, ...manifest.sampleShape];
      const noise = createRandom(o.seed).normalTensor(shape);
      const { x, nfe, seconds } = await sampleModel(model, manifest, noise, {
        nfe: o.nfe,
        teacherSteps: o.steps,
        familyOptions,
        families,
        ...(o.guidanceScale !== undefined ? { guidanceScale: o.guidanceScale } : {}),
        ...(o.labels ? { labels: o.labels } : {}),
        ...(o.h !== undefined ? { h: o.h, seed: o.seed } : {}),
        ...(o.substeps !== undefined ? { substeps: o.substeps } : {}),
      });
      // Read asynchronously: tfjs's WebGPU backend cannot read GPU memory synchronously in Node.
      const values = await readFloats(x);
      const written: string[] = [];
      if (manifest.sampleShape.length === 1 && manifest.sampleShape[0] === 2) {
        await writeDensityPanels(o.out, [{ title: o.model, points: values }]);
        written.push(o.out);
      } else if (manifest.sampleShape.length === 3) {
        await writeImageGrid(o.out, values, shape);
        written.push(o.out);
      }
      if (o.npy) {
        await writeNpy(o.npy, values, shape);
        written.push(o.npy);
      }
      if (o.json) {
        await mkdir(path.dirname(path.resolve(o.json)), { recursive: true });
        await writeFile(o.json, JSON.stringify({ shape, nfe, values: Array.from(values) }));
        written.push(o.json);
      }
      console.log(
        `${o.count} samples with ${nfe} network evaluations in ${seconds.toFixed(2)} s → ${written.join(', ') || '(no image for this sample shape: add --npy or --json)'}`,
      );
      tf.dispose([x, noise]);
      model.dispose();
    });
}
