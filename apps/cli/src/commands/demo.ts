import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRandom, sampleTeacher } from '@piflow/core';
import { describeModel } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { prepareTraining, resolveTeacher, selectBackend } from '../context';
import { DISTILL_DEFAULTS, distil } from '../distillation';
import { builtinFamilies } from '../families';
import { writeDensityPanels } from '../images';
import { applyConfigFile, integer, integerList, renamedOption } from '../options';
import { readFloats } from '../reads';
import { formatQualityTable, type QualityRow, qualityRow, sampleModel } from '../sampling';

/**
 * The README's main job: a short π-ID distillation of the shipped checkerboard teacher into GM students at
 * 1, 2 and 4 steps, then few-step sampling next to the teacher's Euler sampler from the same noise: a quality
 * table on stdout (and in <out>/results.md) and density plots in <out>/.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'Distil the shipped 2-D teacher into 1/2/4-step GM students and compare them with the teacher.',
    )
    .option('--iterations <n>', 'π-ID iterations per student', integer('--iterations', 1), 400)
    .addOption(
      renamedOption(
        '--steps <n>',
        '--steps is now --iterations (π-ID iterations per student).',
        'use --iterations <n>',
      ),
    )
    .option('-n, --count <n>', 'samples per sampler', integer('--count', 2), 4000)
    .option('--nfe <list>', 'student step counts', integerList('--nfe'), [1, 2, 4])
    .option('--seed <n>', 'seed', integer('--seed', 0), 0)
    .option('--out <dir>', 'output folder', 'piflow-demo')
    .addHelpText('after', '\nExample:\n  piflow demo --out piflow-demo\n')
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      const started = performance.now();
      await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      await prepareTraining();
      const resolved = await resolveTeacher('checkerboard');
      console.log(`teacher: ${resolved.label} (${resolved.manifest?.metadata?.command ?? 'shipped'})`);
      const noise = createRandom(o.seed + 100).normalTensor([o.count, 2]);
      const data = resolved.data!(o.count, createRandom(o.seed + 101)).x0;
      // Every read is asynchronous: tfjs's WebGPU backend cannot read GPU memory synchronously in Node.
      const dataValues = await readFloats(data);
      const refStart = performance.now();
      const reference = await sampleTeacher(resolved.teacher, noise, { numInferenceSteps: 128 });
      const refValues = await readFloats(reference);
      const refSeconds = (performance.now() - refStart) / 1000;
      const rows: QualityRow[] = [
        qualityRow('teacher Euler', 128, refValues, dataValues, refValues, refSeconds),
      ];
      rows[0]!.alignment = 0;
      const panels: { title: string; points: ArrayLike<number> }[] = [
        { title: 'data', points: dataValues },
        { title: 'teacher Euler 128', points: refValues },
      ];
      for (const steps of [1, 2, 4]) {
        const t0 = performance.now();
        const x = await sampleTeacher(resolved.teacher, noise, { numInferenceSteps: steps });
        const values = await readFloats(x);
        rows.push(
          qualityRow('teacher Euler', steps, values, dataValues, refValues, (performance.now() - t0) / 1000),
        );
        panels.push({ title: `teacher Euler ${steps}`, points: values });
        x.dispose();
      }
      for (const nfe of o.nfe as number[]) {
        const result = await distil(resolved, {
          family: builtinFamilies.gm!,
          head: { numComponents: 16 },
          nfe,
          iterations: o.iterations,
          batchSize: 256,
          ...DISTILL_DEFAULTS,
          familyOptions: {},
          checkpointEvery: o.iterations,
          seed: o.seed,
          resume: false,
          // the demo rewrites its own folders on every run
          overwrite: true,
          dataFree: false,
          out: path.join(o.out, `gm-${nfe}`),
          label: `π-ID GM ${nfe}-step`,
        });
        const manifest = describeModel(result.student, {
          sampleShape: [2],
          sampling: { shift: resolved.shift, numInferenceSteps: nfe },
        });
        const { x, seconds } = await sampleModel(result.student, manifest, noise, {});
        const values = await readFloats(x);
        rows.push(
          qualityRow(
            `π-Flow GM student (${result.iterations} it.)`,
            nfe,
            values,
            dataValues,
            refValues,
            seconds,
          ),
        );
        panels.push({ title: `π-Flow GM ${nfe}`, points: values });
        x.dispose();
        result.student.dispose();
      }
      const order = await writeDensityPanels(path.join(o.out, 'comparison.png'), panels, {
        title: `checkerboard, ${o.count} samples from one noise batch`,
      });
      const table = formatQualityTable(rows);
      const minutes = (performance.now() - started) / 60000;
      const report = [
        `# piflow demo — checkerboard, ${o.count} samples from one noise batch`,
        '',
        table,
        '',
        `comparison.png, left to right: ${order.join(' | ')}`,
        `Total time: ${minutes.toFixed(1)} min on backend ${tf.getBackend()}.`,
        '',
      ].join('\n');
      await writeFile(path.join(o.out, 'results.md'), report);
      console.log(`\n${report}`);
      console.log(
        `Wrote ${path.join(o.out, 'comparison.png')}, ${path.join(o.out, 'results.md')} and per-student folders.`,
      );
      tf.dispose([noise, data, reference]);
      resolved.dispose();
    });
}
