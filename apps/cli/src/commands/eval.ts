import { writeFile } from 'node:fs/promises';
import { createRandom, sampleTeacher } from '@piflow/core';
import { isFlowModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { datasets2D, loadAnyModel, resolveTeacher, selectBackend } from '../context';
import { UsageError } from '../errors';
import { collectPairs } from '../families';
import { applyConfigFile, integer, outputFile } from '../options';
import { readFloats } from '../reads';
import { formatQualityTable, qualityRow, sampleModel } from '../sampling';
import { checkStepOptions, samplingOptions } from './sample';

export function evalCommand(): Command {
  return new Command('eval')
    .description('Measure a 2-D model against its data and against the teacher ODE from the same noise.')
    .option(
      '--model <spec>',
      'a model folder (student or teacher), or a shipped one: checkerboard (the teacher), checkerboard/gm-4, …',
      'checkerboard',
    )
    .option('--teacher <spec>', 'reference teacher for alignment', 'checkerboard')
    .option(
      '--reference-steps <n>',
      'Euler steps of the reference teacher ODE',
      integer('--reference-steps', 1),
      128,
    )
    .option(
      '--nfe <n>',
      'steps of a π-Flow student (default: what it was trained for)',
      integer('--nfe', 1, 1024),
    )
    .option('--steps <n>', 'Euler steps of a teacher (default 32)', integer('--steps', 1, 4096))
    .option('-n, --count <n>', 'samples', integer('--count', 2), 2000)
    .option('--seed <n>', 'noise seed', integer('--seed', 0), 0)
    .option('--json <file.json>', 'also write the metrics as JSON', outputFile('--json', ['.json']))
    .option('--plugin <package or path>', 'load a policy-family plugin package (repeatable)', collectPairs)
    .option(
      '--sample-option <name=value>',
      "a sampling option of the student's family, e.g. temperature=auto (repeatable)",
      collectPairs,
    )
    .addHelpText('after', '\nExample:\n  piflow eval --model runs/gm4/model --json gm4-metrics.json\n')
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      const { model, manifest, families } = await loadAnyModel(o.model, o.plugin ?? []);
      checkStepOptions(model, o.model, o);
      const familyOptions = isFlowModel(model) ? {} : samplingOptions(families.get(model.family), o);
      const dataset = manifest.metadata?.dataset as string | undefined;
      if (!dataset || !datasets2D[dataset]) {
        throw new UsageError(
          `${o.model} does not name a built-in 2-D dataset to compare with.`,
          'evaluate models trained on checkerboard or rings.',
        );
      }
      const noise = createRandom(o.seed).normalTensor([o.count, ...manifest.sampleShape]);
      const data = datasets2D[dataset]!().sample(o.count, createRandom(o.seed + 1));
      const resolved = await resolveTeacher(o.teacher);
      const reference = await sampleTeacher(resolved.teacher, noise, {
        numInferenceSteps: o.referenceSteps,
      });
      const { x, nfe, seconds } = await sampleModel(model, manifest, noise, {
        nfe: o.nfe,
        teacherSteps: o.steps,
        familyOptions,
        families,
      });
      // Read asynchronously: tfjs's WebGPU backend cannot read GPU memory synchronously in Node.
      const [samples, dataValues, referenceValues] = await Promise.all([x, data, reference].map(readFloats));
      const row = qualityRow(o.model, nfe, samples!, dataValues!, referenceValues!, seconds);
      console.log(formatQualityTable([row]));
      if (o.json) await writeFile(o.json, `${JSON.stringify(row, null, 2)}\n`);
      tf.dispose([noise, data, reference, x]);
      model.dispose();
      resolved.dispose();
    });
}
