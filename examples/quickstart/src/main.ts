/**
 * π-Flow on an exact Gaussian-mixture flow: the GM policy built from the exact x0-posterior (the "oracle
 * student") samples in 1 and 4 network evaluations what the teacher's ODE needs 128 substeps for, while the
 * teacher's own Euler sampler at 1 or 4 steps is far off. Prints distances to the 128-substep teacher ODE.
 */
import '@tensorflow/tfjs-backend-cpu';
import {
  createAnalyticGMFlow,
  createRandom,
  rollout,
  type Student,
  sample,
  sampleTeacher,
} from '@piflow/core';
import { type GMParams, gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';

await tf.setBackend('cpu');
const random = createRandom(0);
const K = 8;
const means = Array.from({ length: K }, (_, k) => [
  2 * Math.cos((2 * Math.PI * k) / K),
  2 * Math.sin((2 * Math.PI * k) / K),
]);
const flow = createAnalyticGMFlow({ means, std: 0.15 });
const teacher = {
  metadata: { shift: 1 },
  velocity: async (x: tf.Tensor, s: number | tf.Tensor1D) => flow.velocity(x, s),
};
const oracleStudent: Student<GMParams> = { family: 'gm', predict: (x, sigma) => flow.posterior(x, sigma) };

const n = 2000;
const noise = random.normalTensor([n, 2]);
const reference = rollout(flow, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 128 });
const ref = reference.dataSync();

const rms = (t: tf.Tensor) => {
  const v = t.dataSync();
  let acc = 0;
  for (let i = 0; i < v.length; i++) acc += (v[i]! - ref[i]!) ** 2;
  return Math.sqrt(acc / n);
};
const logDensity = (t: tf.Tensor) => {
  const lp = flow.logDensity(t.dataSync());
  return lp.reduce((a, b) => a + b, 0) / lp.length;
};

const rows: { sampler: string; nfe: number; alignment: number; logDensity: number }[] = [];
rows.push({
  sampler: 'teacher ODE, 128 substeps',
  nfe: 128,
  alignment: 0,
  logDensity: logDensity(reference),
});
for (const steps of [1, 4]) {
  const euler = await sampleTeacher(teacher, noise, { numInferenceSteps: steps });
  rows.push({ sampler: `teacher Euler`, nfe: steps, alignment: rms(euler), logDensity: logDensity(euler) });
  euler.dispose();
  const x = sample(oracleStudent, gm, noise, { numInferenceSteps: steps });
  rows.push({
    sampler: `π-Flow GM policy (oracle)`,
    nfe: steps,
    alignment: rms(x),
    logDensity: logDensity(x),
  });
  x.dispose();
}
const { x0 } = flow.sample(n, random);
rows.push({ sampler: 'data', nfe: 0, alignment: Number.NaN, logDensity: logDensity(x0) });

console.log('\nπ-Flow quick start: 2-D mixture of 8 Gaussians, 2000 samples from the same noise\n');
console.log('sampler                        NFE   RMS distance to teacher ODE   mean log-density');
for (const r of rows) {
  console.log(
    `${r.sampler.padEnd(30)} ${String(r.nfe).padStart(4)}   ${Number.isNaN(r.alignment) ? '—'.padStart(27) : r.alignment.toExponential(2).padStart(27)}   ${r.logDensity.toFixed(3).padStart(16)}`,
  );
}
tf.dispose([noise, reference, x0]);
