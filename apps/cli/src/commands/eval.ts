import { writeFile } from 'node:fs/promises';
import { createRandom, type PolicyRegistry, sampleTeacher } from '@piflow/core';
import { isFlowModel, type ModelManifest, type StoredModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { datasets2D, loadAnyModel, resolveTeacher, selectBackend } from '../context';
import { UsageError } from '../errors';
import { collectPairs } from '../families';
import { evaluateAgainstMixture, formatMixtureTable } from '../mixture-eval';
import { applyConfigFile, integer, outputFile } from '../options';
import { createProgress } from '../progress';
import { readFloats } from '../reads';
import { formatQualityTable, qualityRow, sampleModel } from '../sampling';
import { checkStepOptions, samplingOptions } from './sample';

export function evalCommand(): Command {
  return new Command('eval')
    .description(
      'Measure a model against its data and against the teacher ODE from the same noise: a 2-D model against its dataset, any model of an analytic-gm: teacher against the exact mixture.',
    )
    .option(
      '--model <spec>',
      'a model folder (student or teacher), or a shipped one: checkerboard (the teacher), checkerboard/gm-4, …',
      'checkerboard',
    )
    .option(
      '--teacher <spec>',
      'reference teacher for alignment; analytic-gm:<file.json> measures against that exact mixture (coverage, spread, log-density, mode shift from its ODE)',
      'checkerboard',
    )
    .option(
      '--reference-steps <n>',
      'steps of the reference teacher ODE (Euler; the midpoint rule against a mixture)',
      integer('--reference-steps', 1),
      128,
    )
    .option(
      '--nfe <n>',
      'steps of a π-Flow student (default: what it was trained for)',
      integer('--nfe', 1, 1024),
    )
    .option('--steps <n>', 'Euler steps of a teacher (default 32)', integer('--steps', 1, 4096))
    .option('-n, --count <n>', 'samples (a mixture: in chunks, a million fit)', integer('--count', 2), 2000)
    .option('--seed <n>', 'noise seed', integer('--seed', 0), 0)
    .option('--json <file.json>', 'also write the metrics as JSON', outputFile('--json', ['.json']))
    .option('--plugin <package or path>', 'load a policy-family plugin package (repeatable)', collectPairs)
    .option(
      '--sample-option <name=value>',
      "a sampling option of the student's family, e.g. temperature=auto (repeatable)",
      collectPairs,
    )
    .addHelpText(
      'after',
      '\nExamples:\n  piflow eval --model runs/gm4/model --json gm4-metrics.json\n  piflow eval --model runs/dx4/model --teacher analytic-gm:mixture.json -n 1000000\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      const { model, manifest, families } = await loadAnyModel(o.model, o.plugin ?? []);
      checkStepOptions(model, o.model, o);
      const familyOptions = isFlowModel(model) ? {} : samplingOptions(families.get(model.family), o);
      if (String(o.teacher).startsWith('analytic-gm:')) {
        await evalAgainstMixture(o as MixtureEvalArgs, model, manifest, families, familyOptions);
        return;
      }
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

interface MixtureEvalArgs {
  model: string;
  teacher: string;
  count: number;
  seed: number;
  referenceSteps: number;
  nfe?: number;
  steps?: number;
  json?: string;
}

async function evalAgainstMixture(
  o: MixtureEvalArgs,
  model: StoredModel,
  manifest: ModelManifest,
  families: PolicyRegistry,
  familyOptions: Record<string, unknown>,
): Promise<void> {
  const resolved = await resolveTeacher(o.teacher);
  try {
    const flow = resolved.mixture!;
    const shape = manifest.sampleShape;
    if (shape.length !== 1 || shape[0] !== flow.dimension) {
      throw new UsageError(
        `${o.model} makes samples of shape [${shape.join(', ')}], the mixture in ${o.teacher} has dimension ${flow.dimension}.`,
        `evaluate a model trained on that mixture (piflow distill --teacher ${o.teacher}).`,
      );
    }
    const progress = createProgress(`eval ${o.count} samples`, o.count);
    const row = await evaluateAgainstMixture(o.model, model, manifest, flow, resolved.teacher, {
      count: o.count,
      seed: o.seed,
      referenceSteps: o.referenceSteps,
      nfe: o.nfe,
      teacherSteps: o.steps,
      familyOptions,
      families,
      onProgress: (done) => progress.update(done),
    });
    progress.stop();
    console.log(formatMixtureTable([row]));
    if (o.json) await writeFile(o.json, `${JSON.stringify(row, null, 2)}\n`);
  } finally {
    model.dispose();
    resolved.dispose();
  }
}
