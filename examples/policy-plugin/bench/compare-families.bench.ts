/**
 * GM vs DX vs the diagonal-Gaussian plugin family, each distilled by π-ID (@piflow/trainer) from the exact
 * teacher of a 2-D mixture of 8 Gaussians on a ring, on the same MLP backbone, then sampled at the trained NFE
 * from one noise batch and judged against the exact data distribution (@piflow/eval) and the teacher's
 * 128-substep ODE.
 * Expectation before running: the single Gaussian per element cannot follow the teacher where the x0
 * posterior is multi-modal (early steps), so at 2 NFE it should land between the teacher's Euler sampler and
 * the GM student; with more steps the posterior per step is nearly uni-modal and it should approach GM/DX.
 *
 *   flock /tmp/piflow-bench.lock pnpm --filter piflow-policy-gaussian bench [-- --steps 400 --nfe 2]
 */
import { setupWasm } from '@piflow/backend-node';
import {
  createAnalyticGMFlow,
  createRandom,
  rollout,
  sample,
  sampleTeacher,
  type TrainableStudent,
} from '@piflow/core';
import { gaussianMixtureMeasures, teacherAlignment } from '@piflow/eval';
import { type Backbone, createMLPBackbone, createStudent } from '@piflow/models';
import { createDXFamily } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import { createPiIDTrainer } from '@piflow/trainer';
import * as tf from '@tensorflow/tfjs-core';
import { type GaussianUParams, gaussian } from '../src/index';

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const trainSteps = option('steps', 400);
const nfe = option('nfe', 2);
const evalCount = option('samples', 4000);

await setupWasm();
await tf.setBackend('wasm');

const C = 2;
const K = 8;
const flow = createAnalyticGMFlow({
  means: Array.from({ length: K }, (_, k) => [
    2 * Math.cos((2 * Math.PI * k) / K),
    2 * Math.sin((2 * Math.PI * k) / K),
  ]),
  std: 0.15,
});
const teacher = {
  metadata: {},
  velocity: async (x: tf.Tensor, s: number | tf.Tensor1D) => flow.velocity(x, s),
};
const noise = createRandom(7).normalTensor([evalCount, C]);
const teacherODE = rollout(flow, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 128 });
const reference = teacherODE.dataSync();
const { x0: dataSamples } = flow.sample(evalCount, createRandom(8));
const dataMeasures = gaussianMixtureMeasures(flow, dataSamples.dataSync());

/** The plugin's student head: one dense layer from the backbone's features to u-space mean and log-std. */
function createGaussianStudent(
  backbone: Backbone,
  initialLogstd = Math.log(0.05),
): TrainableStudent<GaussianUParams> {
  const F = backbone.featureChannels;
  const random = createRandom(5);
  const weight = tf.variable(tf.mul(random.normalTensor([F, 2 * C]), 0.1 / Math.sqrt(F)));
  const bias = tf.variable(tf.tensor1d([...new Array(C).fill(0), ...new Array(C).fill(initialLogstd)]));
  return {
    family: 'gaussian',
    variables: [...backbone.variables, weight, bias],
    predict(x, sigma) {
      return tf.tidy(() => {
        const { features, embedding } = backbone.apply(x, sigma);
        embedding.dispose();
        const out = tf.add(tf.matMul(features, weight), bias);
        const [mean, logstd] = tf.split(out, 2, 1);
        return { space: 'u' as const, mean: mean!, logstd: logstd! };
      });
    },
    dispose: () => {
      backbone.dispose();
      tf.dispose([weight, bias]);
    },
  };
}

interface Row {
  sampler: string;
  outputsPerSample: string;
  tv: number;
  spread: number;
  logDensityGap: number;
  alignment: number;
  stepsPerSecond?: number;
}
const rows: Row[] = [];
const measure = (sampler: string, outputsPerSample: string, x: tf.Tensor, stepsPerSecond?: number) => {
  const values = x.dataSync();
  const m = gaussianMixtureMeasures(flow, values);
  rows.push({
    sampler,
    outputsPerSample,
    tv: m.coverageTV,
    spread: m.spread,
    logDensityGap: m.logDensity - dataMeasures.logDensity,
    alignment: teacherAlignment({ values, dimension: C }, { values: reference, dimension: C }),
    stepsPerSecond,
  });
};

const euler = await sampleTeacher(teacher, noise, { numInferenceSteps: nfe });
measure(`teacher Euler, ${nfe} steps`, '—', euler);
euler.dispose();

async function distil(
  label: string,
  outputs: string,
  student: TrainableStudent<unknown>,
  family: Parameters<typeof createPiIDTrainer>[0]['family'],
) {
  const trainer = createPiIDTrainer({
    student,
    family,
    teacher,
    data: (n, random) => ({ x0: flow.sample(n, random).x0 }),
    batchSize: 256,
    numInferenceSteps: nfe,
    numIntermediateStates: 2,
    optimizer: { learningRate: 1e-3, warmupSteps: 50, gradientClip: 1 },
    ema: { gamma: 7, start: 50 },
    seed: 1,
  });
  const started = performance.now();
  await trainer.train(trainSteps);
  const stepsPerSecond = trainSteps / ((performance.now() - started) / 1000);
  const x = await trainer.withEMA(() =>
    sample(student as never, family as never, noise, {
      numInferenceSteps: nfe,
      ...(student.policyOptions ? { policyOptions: student.policyOptions } : {}),
    }),
  );
  measure(label, outputs, x, stepsPerSecond);
  x.dispose();
  trainer.dispose();
}

const backbone = (seed: number) => createMLPBackbone({ inputDim: C, width: 128, depth: 3, seed });
await distil(
  `GM student (K=${K})`,
  `${K * C + K + 1}`,
  createStudent(backbone(1), { family: gm, head: { numComponents: K } }),
  gm,
);
const dxFamily = createDXFamily({ segmentSize: 1 / nfe });
await distil(
  'DX student (N=10)',
  `${10 * C}`,
  createStudent(backbone(1), { family: dxFamily, head: { numPoints: 10 }, segmentSize: 1 / nfe }),
  dxFamily,
);
await distil('Gaussian plugin student', `${2 * C}`, createGaussianStudent(backbone(1)), gaussian);

const f = (v: number, d = 3) => (Number.isNaN(v) ? '—' : v.toFixed(d));
console.log(
  `\n2-D ring of ${K} Gaussians (std 0.15), ${evalCount} samples from one noise batch, ${nfe} NFE, π-ID ${trainSteps} steps (batch 256), backend ${tf.getBackend()}\n`,
);
console.log(
  '| sampler | student outputs per sample | coverage TV | spread | log-density − data (nats) | RMS to teacher ODE | train steps/s |',
);
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.sampler} | ${r.outputsPerSample} | ${f(r.tv)} | ${f(r.spread)} | ${f(r.logDensityGap)} | ${f(r.alignment)} | ${r.stepsPerSecond ? r.stepsPerSecond.toFixed(1) : ''} |`,
  );
}
tf.dispose([noise, teacherODE, dataSamples]);
