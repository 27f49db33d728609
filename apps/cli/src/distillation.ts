import { appendFileSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type Condition,
  familyMlpDepth,
  type LossWeighting,
  type PolicyFamily,
  type Random,
  resolveFamilyOptions,
  type TrainableStudent,
} from '@piflow/core';
import {
  createMLPBackbone,
  createStudent,
  initStudentFromTeacher,
  type PolicyStudent,
  saveModelDirectory,
} from '@piflow/models';
import { createPiIDTrainer, type RunFolder, type StepMetrics } from '@piflow/trainer';
import * as tf from '@tensorflow/tfjs-core';
import type { ResolvedTeacher } from './context';
import { UsageError } from './errors';
import { writeLossPlot } from './images';
import { commandLine } from './options';
import { createProgress } from './progress';
import { readAhead } from './reads';
import { takeRunFolder } from './run-folder';
import { truncateLog } from './run-log';

export interface DistillOptions {
  /** The policy family (from the registry: built-ins and plugins). */
  family: PolicyFamily;
  /** The family's head options (e.g. GM numComponents), validated by its declarations. */
  head: Record<string, unknown>;
  /** The family's training options (e.g. GM dropout), validated by its declarations. */
  familyOptions: Record<string, unknown>;
  /**
   * The family's sampling options recorded with the model (e.g. GM temperature); sampling at any step count
   * uses them unless told otherwise. Default: the family's declared defaults.
   */
  samplingOptions?: Record<string, unknown>;
  nfe: number;
  /** π-ID iterations. */
  iterations: number;
  batchSize: number;
  width?: number;
  depth?: number;
  lr: number;
  lossScale: number;
  /** Default: the family's. */
  lossWeighting?: LossWeighting;
  gradClip: number;
  /** First iteration that clips (default: the warm-up length). */
  clipBegin?: number;
  gradAccum: number;
  substeps: number;
  intermediateStates: number;
  windowSubsteps: number;
  decayIters: number;
  finalStepSizeScale: number;
  segmentSampling: 'grid' | 'continuous' | 'mixed';
  checkpointEvery: number;
  seed: number;
  resume: boolean;
  /** Replace a previous run in `out` (its model, checkpoints and log). */
  overwrite?: boolean;
  dataFree: boolean;
  out: string;
  /** Prefix of progress lines. */
  label?: string;
  quiet?: boolean;
}

/**
 * The π-ID recipe `piflow distill` and `piflow demo` use unless told otherwise; where each value comes from is
 * in docs/TRAINING.md.
 */
export const DISTILL_DEFAULTS = {
  /**
   * A new MLP student (for teachers that are not flow models): 256 wide, 3 residual blocks unless the family
   * asks for another depth for the step count (`training.mlpDepth`).
   */
  width: 256,
  depth: 3,
  lr: 5e-4,
  lossScale: 1,
  gradClip: 1,
  gradAccum: 1,
  substeps: 128,
  intermediateStates: 2,
  windowSubsteps: 0,
  decayIters: 0,
  finalStepSizeScale: 1,
  segmentSampling: 'mixed',
} as const satisfies Partial<DistillOptions>;

export interface DistillResult {
  student: PolicyStudent;
  family: PolicyFamily;
  losses: number[];
  /** Iterations done (the last one, counting those before a resume). */
  iterations: number;
  seconds: number;
  aborted: boolean;
}

/**
 * Builds a student (from the teacher's weights when the teacher is a flow model, as the paper does), runs
 * π-ID with progress, a JSONL log, checkpoints and Ctrl-C handling, and exports the EMA student to
 * `<out>/model` plus `<out>/loss.png`.
 */
export async function distil(resolved: ResolvedTeacher, o: DistillOptions): Promise<DistillResult> {
  const teacherBackbone = resolved.flowModel?.backbone;
  // The student starts from the teacher's architecture and weights (as the paper does) unless a different MLP
  // size is asked for.
  const reuse = teacherBackbone !== undefined && o.width === undefined && o.depth === undefined;
  if (!reuse && resolved.sampleShape.length !== 1) {
    throw new UsageError(
      '--width/--depth set an MLP student, which needs vector samples; this teacher makes images.',
      'drop --width and --depth (the student then copies the teacher network).',
    );
  }
  const backbone = reuse
    ? teacherBackbone.clone()
    : createMLPBackbone({
        inputDim: resolved.sampleShape[0]!,
        width: o.width ?? DISTILL_DEFAULTS.width,
        depth: o.depth ?? familyMlpDepth(o.family, o.nfe) ?? DISTILL_DEFAULTS.depth,
        seed: o.seed,
      });
  const segmentSize = 1 / (o.nfe - 1 + o.finalStepSizeScale);
  const family = o.family;
  let student: PolicyStudent;
  try {
    student = createStudent(backbone, {
      family,
      head: o.head,
      shift: resolved.shift,
      segmentSize,
      seed: o.seed,
    });
  } catch (error) {
    backbone.dispose();
    throw new UsageError(
      (error as Error).message.replace('options.head.', '--head '),
      `run \`piflow distill --help\` for the options of the family "${family.name}".`,
    );
  }
  let folder: RunFolder;
  try {
    folder = await takeRunFolder(o.out, {
      runFiles: DISTILL_RUN_FILES,
      resume: o.resume,
      overwrite: o.overwrite ?? false,
    });
  } catch (error) {
    student.dispose();
    throw error;
  }
  try {
    return await distilInto(resolved, o, student, reuse);
  } finally {
    await folder.release();
  }
}

/** What a distillation writes into its output folder. */
const DISTILL_RUN_FILES = ['model', 'checkpoints', 'distill-log.jsonl', 'loss.png'];

async function distilInto(
  resolved: ResolvedTeacher,
  o: DistillOptions,
  student: PolicyStudent,
  reuse: boolean,
): Promise<DistillResult> {
  const family = o.family;
  if (reuse && resolved.flowModel) initStudentFromTeacher(student, resolved.flowModel, { seed: o.seed });
  const logFile = path.join(o.out, 'distill-log.jsonl');
  if (!o.resume) await writeFile(logFile, '');
  const losses: number[] = [];
  let firstIteration: number | undefined;
  const progress = o.quiet
    ? undefined
    : createProgress(o.label ?? `distill ${family.name}-${o.nfe}`, o.iterations);
  let pending = '';
  const warmup = Math.min(100, Math.floor(o.iterations / 10));
  const trainer = createPiIDTrainer({
    student: student as TrainableStudent<unknown>,
    familyOptions: o.familyOptions,
    family,
    teacher: resolved.teacher,
    ...(resolved.data && !o.dataFree
      ? { data: (n, random) => resolved.data!(n, random) }
      : {
          sampleShape: resolved.sampleShape,
          ...(resolved.numClasses !== undefined ? { conditions: randomLabels(resolved.numClasses) } : {}),
        }),
    batchSize: o.batchSize,
    numInferenceSteps: o.nfe,
    finalStepSizeScale: o.finalStepSizeScale,
    segmentSampling: o.segmentSampling,
    shift: resolved.shift,
    numIntermediateStates: o.intermediateStates,
    substeps: o.substeps,
    lossScale: o.lossScale,
    ...(o.lossWeighting ? { lossWeighting: o.lossWeighting } : {}),
    gradientAccumulation: o.gradAccum,
    windowSubsteps: o.windowSubsteps,
    numDecayIters: o.decayIters,
    // Warm-up and EMA start as the reference's FLUX configs (100 iterations), shortened to a tenth of short runs.
    optimizer: {
      learningRate: o.lr,
      warmupSteps: warmup,
      gradientClip: o.gradClip,
      gradientClipBegin: o.clipBegin ?? 0,
    },
    ema: { gamma: 7, start: warmup },
    seed: o.seed,
    checkpoint: { dir: path.join(o.out, 'checkpoints'), every: o.checkpointEvery, keep: 2 },
    onWarning: (message) => console.warn(`warning: ${message}`),
    onStep: (m: StepMetrics) => {
      losses.push(m.loss);
      firstIteration ??= m.step;
      pending += `${JSON.stringify(m)}\n`;
      // the lines up to a checkpoint reach the disk before it is written: a kill after it loses none of them
      if (!m.skipped && m.step % o.checkpointEvery === 0) {
        appendFileSync(logFile, pending);
        pending = '';
      }
      progress?.update(m.step, { loss: m.loss, ...(m.skipped ? { skipped: 'non-finite' } : {}) });
    },
    metadata: { teacher: resolved.label, family: family.name, nfe: o.nfe },
  });
  if (o.resume) {
    const step = await trainer.resume();
    if (step !== undefined && !o.quiet) console.log(`resumed at step ${step}`);
    // steps after the checkpoint are run again: their old lines go, so each step is logged once
    await truncateLog(logFile, step ?? 0);
  }
  const abort = new AbortController();
  const onSigint = () => {
    abort.abort();
    if (!o.quiet) console.log('\nCtrl-C: finishing the current step and saving a checkpoint…');
  };
  process.once('SIGINT', onSigint);
  const flush = setInterval(() => {
    if (pending) {
      void appendFile(logFile, pending);
      pending = '';
    }
  }, 2000);
  const started = performance.now();
  let result: { step: number; aborted: boolean };
  try {
    result = await trainer.train(o.iterations, { signal: abort.signal });
  } finally {
    clearInterval(flush);
    process.removeListener('SIGINT', onSigint);
    progress?.stop();
    await appendFile(logFile, pending);
  }
  const seconds = (performance.now() - started) / 1000;
  trainer.ema?.copyTo();
  await readAhead(student.variables);
  await saveModelDirectory(path.join(o.out, 'model'), student, {
    sampleShape: resolved.sampleShape,
    sampling: {
      shift: resolved.shift,
      numInferenceSteps: o.nfe,
      finalStepSizeScale: o.finalStepSizeScale,
      ...(resolved.guidanceScale !== 1 ? { guidanceScale: resolved.guidanceScale } : {}),
      familyOptions: resolveFamilyOptions(
        '--sample-option',
        family.sampling?.options,
        o.samplingOptions,
      ) as Record<string, number | string>,
    },
    metadata: {
      teacher: resolved.label,
      ...(resolved.manifest?.metadata?.dataset ? { dataset: resolved.manifest.metadata.dataset } : {}),
      distillationSteps: result.step,
      command: commandLine(),
    },
  });
  await writeLossPlot(path.join(o.out, 'loss.png'), losses, {
    title: `π-ID loss: ${family.name} ${o.nfe}-step student`,
    firstIteration: firstIteration ?? 1,
  });
  trainer.dispose();
  return { student, family, losses, iterations: result.step, seconds, aborted: result.aborted };
}

/** Uniformly random class labels (int32) for data-free distillation of a class-conditional teacher. */
function randomLabels(numClasses: number): (n: number, random: Random) => Condition {
  return (n, random) => {
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) labels[i] = random.integer(numClasses);
    return { labels: tf.tensor1d(labels, 'int32') };
  };
}
