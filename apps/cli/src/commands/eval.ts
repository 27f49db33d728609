import { writeFile } from 'node:fs/promises';
import { createRandom, sampleTeacher } from '@piflow/core';
import { isFlowModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { datasets2D, loadAnyModel, resolveTeacher, selectBackend } from '../context';
import { UsageError } from '../errors';
import { collectPairs } from '../families';
import { applyConfigFile, integer } from '../options';
import { formatQualityTable, qualityRow, sampleModel } from '../sampling';
import { samplingOptions } from './sample';

export function evalCommand(): Command {
  return new Command('eval')
    .description('Measure a 2-D model against its data and against the teacher ODE from the same noise.')
    .option('--model <spec>', 'a model folder (student or teacher)', 'checkerboard')
    .option('--teacher <spec>', 'reference teacher for alignment', 'checkerboard')
    .option(
      '--reference-steps <n>',
      'Euler steps of the reference teacher ODE',
      integer('--reference-steps', 1),
      128,
    )
    .option('--nfe <n>', 'student steps (default: what it was trained for)', integer('--nfe', 1, 1024))
    .option('--steps <n>', 'Euler steps when the model is a teacher', integer('--steps', 1, 4096), 32)
    .option('-n, --count <n>', 'samples', integer('--count', 2), 2000)
    .option('--seed <n>', 'noise seed', integer('--seed', 0), 0)
    .option('--json <file>', 'also write the metrics as JSON')
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
      await selectBackend(command.optsWithGlobals().backend, (l) => console.log(l));
      const { model, manifest, families } = await loadAnyModel(o.model, o.plugin ?? []);
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
      const reference = await sampleTeacher(resolved.teacher, noise, { numSteps: o.referenceSteps });
      const { x, nfe, seconds } = await sampleModel(model, manifest, noise, {
        nfe: o.nfe,
        teacherSteps: o.steps,
        familyOptions,
        families,
      });
      const row = qualityRow(o.model, nfe, x.dataSync(), data.dataSync(), reference.dataSync(), seconds);
      console.log(formatQualityTable([row]));
      if (o.json) await writeFile(o.json, `${JSON.stringify(row, null, 2)}\n`);
      tf.dispose([noise, data, reference, x]);
      model.dispose();
      resolved.dispose();
    });
}
