/**
 * Development stand-ins for the shipped 2-D models: trains a checkerboard flow model (the teacher) and π-ID GM
 * students for 1, 2 and 4 steps, and writes them in the shipped layout
 *   <out>/checkerboard/{teacher,gm-1,gm-2,gm-4}/{model.json,weights.bin}
 * (default <out>: apps/web/.dev-models, git-ignored). Serve them with
 *   PIFLOW_MODELS_DIR=.dev-models pnpm dev
 *
 *   pnpm --filter @piflow/web train-dev-models [-- --teacher-steps 3000 --student-steps 800 --out .dev-models]
 *
 * `--teacher <dir>` distils the students from an existing flow model (e.g. ../../models/checkerboard/teacher)
 * instead of training one; it is copied to <out>/checkerboard/teacher.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupWasm } from '@piflow/backend-node';
import { checkerboard } from '@piflow/datasets';
import {
  createFlowModel,
  createMLPBackbone,
  createStudent,
  type FlowModel,
  isFlowModel,
  loadModelDirectory,
  saveModelDirectory,
  trainFlowModel,
} from '@piflow/models';
import { gm } from '@piflow/policy-gm';
import { createPiIDTrainer } from '@piflow/trainer';
import * as tf from '@tensorflow/tfjs-core';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(path.join(here, '..'), option('out', '.dev-models'));
const teacherSteps = Number(option('teacher-steps', '3000'));
const studentSteps = Number(option('student-steps', '800'));
const teacherDirectory = option('teacher', '');
const width = 128;
const depth = 3;

await setupWasm();
await tf.setBackend('wasm');
const data = checkerboard();
const backbone = (seed: number) => createMLPBackbone({ inputDim: 2, width, depth, seed });

let started = performance.now();
let teacher: FlowModel;
let shift = 1;
if (teacherDirectory) {
  const loaded = await loadModelDirectory(path.resolve(teacherDirectory));
  if (!isFlowModel(loaded.model))
    throw new Error(`${teacherDirectory} holds a ${loaded.manifest.kind}, not a flow model`);
  teacher = loaded.model;
  shift = loaded.manifest.sampling?.shift ?? 1;
  await saveModelDirectory(path.join(out, 'checkerboard', 'teacher'), teacher, {
    sampleShape: loaded.manifest.sampleShape,
    ...(loaded.manifest.sampling ? { sampling: loaded.manifest.sampling } : {}),
    ...(loaded.manifest.metadata ? { metadata: loaded.manifest.metadata } : {}),
  });
  console.log(`teacher: loaded from ${teacherDirectory}`);
} else {
  teacher = createFlowModel(backbone(1));
  await trainFlowModel(teacher, (n, random) => data.sample(n, random), {
    steps: teacherSteps,
    batchSize: 512,
    learningRate: 2e-3,
    warmupSteps: 100,
    gradientClip: 1,
    random: 1,
    onStep: ({ step, loss }) => {
      if (step % 500 === 0) console.log(`teacher step ${step} loss ${loss.toFixed(4)}`);
      return undefined;
    },
  });
  await saveModelDirectory(path.join(out, 'checkerboard', 'teacher'), teacher, {
    sampleShape: [2],
    sampling: { shift },
    metadata: {
      dataset: 'checkerboard',
      trainingSteps: teacherSteps,
      producedBy: 'apps/web/scripts/train-dev-models.ts',
    },
  });
  console.log(`teacher: ${teacherSteps} steps in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

const teacherView = teacher.asTeacher({ shift });
for (const steps of [1, 2, 4]) {
  started = performance.now();
  const student = createStudent(backbone(10 + steps), {
    family: gm,
    head: { numComponents: 8 },
    initFrom: teacher,
  });
  const trainer = createPiIDTrainer({
    student,
    family: gm,
    teacher: teacherView,
    data: (n, random) => ({ x0: data.sample(n, random) }),
    batchSize: 256,
    numInferenceSteps: steps,
    shift,
    numIntermediateStates: 2,
    familyOptions: { dropout: 0.05 },
    optimizer: { learningRate: 1e-3, warmupSteps: 50, gradientClip: 1 },
    ema: { gamma: 7, start: 50 },
    seed: steps,
    onStep: (m) => {
      if (m.step % 200 === 0) console.log(`gm-${steps} step ${m.step} loss ${m.loss.toFixed(4)}`);
    },
  });
  await trainer.train(studentSteps);
  await trainer.withEMA(() =>
    saveModelDirectory(path.join(out, 'checkerboard', `gm-${steps}`), student, {
      sampleShape: [2],
      sampling: { shift, numInferenceSteps: steps },
      metadata: {
        dataset: 'checkerboard',
        trainingSteps: studentSteps,
        producedBy: 'apps/web/scripts/train-dev-models.ts',
      },
    }),
  );
  trainer.dispose();
  student.dispose();
  console.log(`gm-${steps}: ${studentSteps} steps in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
teacher.dispose();
console.log(`wrote ${out}`);
