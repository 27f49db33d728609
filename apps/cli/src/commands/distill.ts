import path from 'node:path';
import { createPolicyRegistry, LOSS_WEIGHTINGS, type PolicyFamily } from '@piflow/core';
import { Command, InvalidArgumentError as CommanderError, Option } from 'commander';
import { prepareTraining, resolveTeacher, selectBackend } from '../context';
import { DISTILL_DEFAULTS as D, distil } from '../distillation';
import { UsageError } from '../errors';
import {
  builtinFamilies,
  chooseFamily,
  collectPairs,
  describeFamilies,
  familyRegistry,
  parseOptionPairs,
} from '../families';
import { checkMemory, sampleSize } from '../memory';
import {
  applyConfigFile,
  checkpointEveryOption,
  integer,
  number,
  overwriteOption,
  renamedOption,
  resumeOption,
  sigmaInterval,
} from '../options';

export function distillCommand(): Command {
  return new Command('distill')
    .description('Distil a teacher into a few-step π-Flow student with π-ID.')
    .option(
      '--teacher <spec>',
      'checkerboard | model:<dir> | analytic-gm:<file.json> | <dir>',
      'checkerboard',
    )
    .option(
      '--family <name>',
      `policy family: ${Object.keys(builtinFamilies).join(', ')}, or one a --plugin provides (listed below)`,
      'gm',
    )
    .option('--plugin <package or path>', 'load a policy-family plugin package (repeatable)', collectPairs)
    .option(
      '--head <name=value>',
      'a head option of the family, e.g. numComponents=8 (repeatable)',
      collectPairs,
    )
    .option(
      '--train-option <name=value>',
      'a training option of the family, e.g. dropout=0.1 (repeatable)',
      collectPairs,
    )
    .option(
      '--sample-option <name=value>',
      'a sampling option of the family recorded with the model, e.g. temperature=auto (repeatable; sampling uses it at any step count)',
      collectPairs,
    )
    .option(
      '--nfe <n>',
      'steps the student is trained for (it runs at that many or more)',
      integer('--nfe', 1, 64),
      4,
    )
    .option(
      '--iterations <n>',
      'π-ID iterations (default 3000 for vector data, 500 for images)',
      integer('--iterations', 1),
    )
    .addOption(
      renamedOption(
        '--steps <n>',
        '--steps is now --iterations (π-ID iterations).',
        "use --iterations <n>; the student's sampling steps are --nfe <n>",
      ),
    )
    .option(
      '--batch-size <n>',
      'batch size (default 256 for vector data, 32 for images)',
      integer('--batch-size', 1),
    )
    .option(
      '--components <n>',
      'shorthand for --head numComponents=<n> (default 16 for vector data, 8 for images, where the family has it)',
      integer('--components', 1),
    )
    .option('--points <n>', 'shorthand for --head numPoints=<n>', integer('--points', 1))
    .option(
      '--width <n>',
      `student MLP width (default: the teacher's network; ${D.width} for a new MLP)`,
      integer('--width', 1),
    )
    .option(
      '--depth <n>',
      `student MLP residual blocks (default: the teacher's network; for a new MLP the family's, else ${D.depth})`,
      integer('--depth', 1),
    )
    .option(
      '--lr <x>',
      `AdamW learning rate (default: the family's, else ${D.lr})`,
      number('--lr', 0, 1, true),
    )
    .option(
      '--loss-scale <x>',
      'π-ID loss multiplier (reference: 3 on ImageNet, 30 on FLUX and Qwen-Image)',
      number('--loss-scale', 0, Number.POSITIVE_INFINITY, true),
      D.lossScale,
    )
    .addOption(
      new Option(
        '--loss-weighting <mode>',
        "velocity (L2 on u, the reference), sigma, x0 or sigma3 (each state's error times σ, σ² or σ³); default: the family's",
      ).choices([...LOSS_WEIGHTINGS]),
    )
    .option(
      '--grad-clip <x>',
      'clip the global gradient norm of the scaled loss to this (reference: 50)',
      number('--grad-clip', 0, Number.POSITIVE_INFINITY, true),
      D.gradClip,
    )
    .option(
      '--clip-begin <n>',
      'first iteration that clips (reference: 100 on FLUX, 400 on ImageNet)',
      integer('--clip-begin', 0),
      0,
    )
    .option(
      '--grad-accum <n>',
      'micro-batches of --batch-size averaged into one update',
      integer('--grad-accum', 1),
      D.gradAccum,
    )
    .option(
      '--substeps <n>',
      'Euler substeps per unit raw time in the policy rollouts',
      integer('--substeps', 1, 4096),
      D.substeps,
    )
    .option(
      '--guidance-interval <low,high>',
      'σ interval where the teacher is guided (class-conditional teachers; default everywhere)',
      sigmaInterval('--guidance-interval'),
    )
    .option(
      '--intermediate-states <n>',
      'intermediate states per segment',
      integer('--intermediate-states', 1),
      D.intermediateStates,
    )
    .option(
      '--window-substeps <n>',
      'window-averaged velocity over this many substeps',
      integer('--window-substeps', 0),
      D.windowSubsteps,
    )
    .option(
      '--decay-iters <n>',
      'trajectory mixing: teacher ratio decays over this many iterations',
      integer('--decay-iters', 0),
      D.decayIters,
    )
    .addOption(
      new Option('--gm-dropout <p>').hideHelp().argParser(() => {
        throw new CommanderError('--gm-dropout is now --train-option dropout=<p>.');
      }),
    )
    .option(
      '--final-step-size-scale <x>',
      'last step size relative to the others',
      number('--final-step-size-scale', 0, 1, true),
      D.finalStepSizeScale,
    )
    .option(
      '--guidance-scale <x>',
      'classifier-free guidance of a class-conditional teacher (default: the one recorded with it)',
      number('--guidance-scale', 1),
    )
    .addOption(
      new Option(
        '--segment-sampling <mode>',
        'where the student is trained: grid (its N step starts, the reference), continuous (any σ) or mixed (each half the time: it then samples well at other step counts too)',
      )
        .choices(['grid', 'continuous', 'mixed'])
        .default(D.segmentSampling),
    )
    .addOption(checkpointEveryOption(200))
    .option('--data-free', 'start from noise and walk the student’s own steps (no data needed)', false)
    .addOption(resumeOption())
    .addOption(overwriteOption())
    .option('--seed <n>', 'random seed', integer('--seed', 0), 0)
    .option(
      '--out <dir>',
      'output folder (model/, checkpoints/, distill-log.jsonl, loss.png)',
      'runs/student',
    )
    .addHelpText(
      'after',
      `\nExamples:\n  piflow distill --teacher checkerboard --nfe 4 --iterations 1500 --out runs/gm4\n  piflow distill --teacher runs/teacher/model --family dx --nfe 4 --resume --out runs/dx4\n  piflow distill --plugin piflow-policy-gaussian --family gaussian --nfe 2 --out runs/gaussian2\n\nBuilt-in families and their options (--head, --train-option, --sample-option):\n${describeFamilies(createPolicyRegistry(builtinFamilies as Record<string, PolicyFamily>))}\n`,
    )
    .action(async (_options, command: Command) => {
      applyConfigFile(command);
      const o = command.opts();
      const registry = await familyRegistry(o.plugin ?? []);
      const family = chooseFamily(registry, o.family);
      const head = parseOptionPairs('--head', o.head, family.studentHead?.options, family.name);
      for (const [flag, name, value] of [
        ['--components', 'numComponents', o.components],
        ['--points', 'numPoints', o.points],
      ] as const) {
        if (value === undefined) continue;
        if (!family.studentHead?.options[name]) {
          throw new UsageError(
            `${flag} sets the head option ${name}, which the family "${family.name}" does not have.`,
            `drop ${flag}; see --help for the family's options.`,
          );
        }
        head[name] = value;
      }
      const familyOptions = parseOptionPairs(
        '--train-option',
        o.trainOption,
        family.training?.options,
        family.name,
      );
      const samplingOptions = parseOptionPairs(
        '--sample-option',
        o.sampleOption,
        family.sampling?.options,
        family.name,
      );
      await selectBackend(command.optsWithGlobals(), (l) => console.log(l));
      await prepareTraining();
      const resolved = await resolveTeacher(o.teacher, {
        guidanceScale: o.guidanceScale,
        guidanceInterval: o.guidanceInterval,
      });
      // Defaults by data: image teachers (U-Nets) cost ~100× more per sample than 2-D MLPs, and vector data
      // gets more mixture components (where the family has that option) for its sharper modes.
      const images = resolved.sampleShape.length > 1;
      if (!images && family.studentHead?.options.numComponents && head.numComponents === undefined) {
        head.numComponents = 16;
      }
      const batchSize = o.batchSize ?? (images ? 32 : 256);
      checkMemory(
        '--batch-size',
        batchSize,
        // policy parameters, intermediate states and the taped second pass per sample; U-Net activations
        batchSize * sampleSize(resolved.sampleShape) * 4 * (images ? 2000 : 400),
        'one π-ID iteration',
      );
      const result = await distil(resolved, {
        ...o,
        family,
        head,
        familyOptions,
        samplingOptions,
        lr: o.lr ?? family.training?.learningRate ?? D.lr,
        iterations: o.iterations ?? (images ? 500 : 3000),
        batchSize,
        out: o.out,
      } as never);
      console.log(
        `${result.aborted ? 'stopped early (Ctrl-C); checkpoint saved' : 'done'}: ${result.iterations} iterations in ${result.seconds.toFixed(0)} s; student saved to ${path.join(o.out, 'model')}`,
      );
      result.student.dispose();
      resolved.dispose();
      if (result.aborted) process.exitCode = 130;
    });
}
