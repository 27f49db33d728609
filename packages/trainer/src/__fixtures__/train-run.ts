/**
 * A real training process for the kill-and-resume test: trains an MLP GM student on an analytic mixture with
 * checkpoints, resuming from the folder's newest intact checkpoint. Prints "resumed <step>", "step <n>"
 * per step and "done <step> <weights checksum>".
 * Usage: node --import tsx --conditions=@piflow/source train-run.ts <checkpointDir> <totalSteps> <every>
 */
import '@tensorflow/tfjs-backend-cpu';
import { createAnalyticGMFlow, createRandom } from '@piflow/core';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { createPiIDTrainer } from '../pi-id-trainer';
import { flowData, flowTeacher } from './analytic-teacher';
import { mlpGMStudent } from './students';

const [dir, total, every] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])];
await tf.setBackend('cpu');
const flow = createAnalyticGMFlow({
  means: [
    [-1, 0],
    [1, 0.5],
    [0, -1],
  ],
  std: 0.2,
});
const student = mlpGMStudent(2, 3, 32, createRandom(1));
const trainer = createPiIDTrainer({
  student,
  family: gm,
  teacher: flowTeacher(flow),
  data: flowData(flow),
  batchSize: 32,
  numInferenceSteps: 2,
  substeps: 16,
  optimizer: { learningRate: 3e-3 },
  seed: 3,
  checkpoint: { dir, every },
  onStep: (m) => console.log(`step ${m.step}`),
  onWarning: (message) => console.log(`warning ${message}`),
});
console.log(`resumed ${(await trainer.resume()) ?? 0}`);
await trainer.train(total);
const checksum = student.variables.reduce(
  (acc, v) => acc + Array.from(v.dataSync()).reduce((a, x, i) => a + x * (i + 1), 0),
  0,
);
console.log(`done ${trainer.step} ${checksum.toPrecision(12)}`);
