import path from 'node:path';
import { Command, Option } from 'commander';
import { resolveTeacher, selectBackend } from '../context';
import { distil } from '../distillation';
import { applyConfigFile, integer, number } from '../options';

export function distillCommand(): Command {
  return new Command('distill')
    .description('Distil a teacher into a few-step π-Flow student with π-ID.')
    .option(
      '--teacher <spec>',
      'checkerboard | model:<dir> | analytic-gm:<file.json> | <dir>',
      'checkerboard',
    )
    .addOption(new Option('--family <name>', 'policy family').choices(['gm', 'dx']).default('gm'))
    .option(
      '--nfe <n>',
      'steps the student is trained for (it runs at that many or more)',
      integer('--nfe', 1, 64),
      4,
    )
    .option(
      '--steps <n>',
      'π-ID iterations (default 1500 for vector data, 500 for images)',
      integer('--steps', 1),
    )
    .option(
      '--batch-size <n>',
      'batch size (default 256 for vector data, 32 for images)',
      integer('--batch-size', 1),
    )
    .option(
      '--components <n>',
      'GM components K (default 16 for vector data, 8 for images)',
      integer('--components', 1),
    )
    .option('--points <n>', 'DX grid points N', integer('--points', 1), 10)
    .option('--width <n>', 'student MLP width (default: the teacher architecture)', integer('--width', 1))
    .option('--depth <n>', 'student MLP blocks (default: the teacher architecture)', integer('--depth', 1))
    .option('--lr <x>', 'AdamW learning rate', number('--lr', 0, 1, true), 5e-4)
    .option(
      '--intermediate-states <n>',
      'intermediate states per segment',
      integer('--intermediate-states', 1),
      2,
    )
    .option(
      '--window-substeps <n>',
      'window-averaged velocity over this many substeps',
      integer('--window-substeps', 0),
      0,
    )
    .option(
      '--decay-iters <n>',
      'trajectory mixing: teacher ratio decays over this many iterations',
      integer('--decay-iters', 0),
      0,
    )
    .option(
      '--gm-dropout <p>',
      'GM component dropout on the rollout policy',
      number('--gm-dropout', 0, 0.99),
      0.05,
    )
    .option(
      '--final-step-size-scale <x>',
      'last step size relative to the others',
      number('--final-step-size-scale', 0, 1, true),
      1,
    )
    .option(
      '--guidance-scale <x>',
      'classifier-free guidance of a class-conditional teacher (default: the one recorded with it)',
      number('--guidance-scale', 1),
    )
    .option('--checkpoint-every <n>', 'checkpoint interval', integer('--checkpoint-every', 1), 200)
    .option('--data-free', 'start from noise and walk the student’s own steps (no data needed)', false)
    .option('--resume', 'continue from the newest checkpoint in <out>/checkpoints', false)
    .option('--seed <n>', 'random seed', integer('--seed', 0), 0)
    .option(
      '--out <dir>',
      'output folder (model/, checkpoints/, distill-log.jsonl, loss.png)',
      'runs/student',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  piflow distill --teacher checkerboard --nfe 4 --steps 1500 --out runs/gm4\n  piflow distill --teacher runs/teacher/model --family dx --nfe 4 --resume --out runs/dx4\n',
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      await selectBackend(command.optsWithGlobals().backend, (l) => console.log(l));
      const resolved = await resolveTeacher(o.teacher, { guidanceScale: o.guidanceScale });
      // Defaults by data: image teachers (U-Nets) cost ~100× more per sample than 2-D MLPs.
      const images = resolved.sampleShape.length > 1;
      const result = await distil(resolved, {
        ...o,
        steps: o.steps ?? (images ? 500 : 1500),
        batchSize: o.batchSize ?? (images ? 32 : 256),
        components: o.components ?? (images ? 8 : 16),
        out: o.out,
      } as never);
      console.log(
        `${result.aborted ? 'stopped early (Ctrl-C); checkpoint saved' : 'done'}: ${result.steps} iterations in ${result.seconds.toFixed(0)} s; student saved to ${path.join(o.out, 'model')}`,
      );
      result.student.dispose();
      resolved.dispose();
      if (result.aborted) process.exitCode = 130;
    });
}
