/**
 * Where the time of MNIST sampling and training goes on wasm, measured in one process: the FLOPs of the
 * networks' matrix products and convolutions (counted from the kernels' shapes, `countFlops` of
 * @piflow/models), their effective GFLOP/s, and a one-thread 1024² matMul probe run in the same process;
 * the peak tensor memory of each (tf.profile's peakBytes) and whether `--growth-steps` training steps grow
 * the tensors or their bytes. The π-ID iteration runs twice: with the shipped teacher (one student forward)
 * and with the same teacher made asynchronous-only (the two-phase iteration: two student forwards).
 *
 *   pnpm --filter @piflow/cli bench:network [-- --count 100 --repeats 3 --batch 48 --pi-batch 32 --growth-steps 1000 --threads 1]
 */
import { AdamW, createRandom, type PolicyFamily, type Teacher } from '@piflow/core';
import { countFlops, isFlowModel, type PolicyStudent } from '@piflow/models';
import { createPiIDTrainer, type TrainableStudent } from '@piflow/trainer';
import * as tf from '@tensorflow/tfjs-core';
import { loadAnyModel, prepareTraining, resolveTeacher, selectBackend } from '../src/context';
import { sampleModel } from '../src/sampling';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const count = Number(option('count', '100'));
const repeats = Number(option('repeats', '3'));
const batch = Number(option('batch', '48'));
const piBatch = Number(option('pi-batch', '32'));
const growthSteps = Number(option('growth-steps', '1000'));

const threads = Number(option('threads', '1'));
const backend = await selectBackend({ backend: 'wasm', threads }, () => {});
await prepareTraining();

/** Best of `repeats` warm runs (one untimed run first), in seconds. */
async function best(fn: () => Promise<void>): Promise<number> {
  await fn();
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    await fn();
    fastest = Math.min(fastest, (performance.now() - started) / 1000);
  }
  return fastest;
}

/**
 * Best of `rounds` warm runs of each function (one untimed run of each first), their runs interleaved (a, b,
 * a, b, …) so that the VM's drift between runs hits all of them; in seconds.
 */
async function bestInterleaved(fns: (() => Promise<void>)[], rounds: number): Promise<number[]> {
  for (const fn of fns) await fn();
  const fastest = fns.map(() => Number.POSITIVE_INFINITY);
  for (let i = 0; i < rounds; i++) {
    for (const [j, fn] of fns.entries()) {
      const started = performance.now();
      await fn();
      fastest[j] = Math.min(fastest[j]!, (performance.now() - started) / 1000);
    }
  }
  return fastest;
}

const gflops = (flops: number, seconds: number) => flops / seconds / 1e9;
const rows: string[] = [];
const memoryRows: string[] = [];
/** Peak bytes of tensors alive during `fn` (tf.profile), in MB. */
async function peakMB(fn: () => Promise<unknown>): Promise<string> {
  const info = await tf.profile(async () => {
    await fn();
  });
  return (info.peakBytes / 1e6).toFixed(1);
}

// The probe: a 1024² · 1024² matMul on the same backend, read back.
const a = tf.randomNormal([1024, 1024]);
const probeSeconds = await best(async () => {
  const y = tf.matMul(a, a);
  await y.data();
  y.dispose();
});
a.dispose();
const probe = gflops(2 * 1024 ** 3, probeSeconds);
rows.push(
  `| matMul 1024² · 1024² (probe) | 2.15 | ${(probeSeconds * 1000).toFixed(0)} | ${probe.toFixed(1)} | 100 % |`,
);

// 4-step sampling of `count` digits by the shipped students (network + policy rollout).
const labels = Array.from({ length: count }, (_, i) => i % 10);
const noise = createRandom(0).normalTensor([count, 28, 28, 1]);
const sampleSeconds: Record<string, number> = {};
// Both students loaded, their runs interleaved (x0-4, gm-4, x0-4, …): the VM's drift between runs hits both.
const students = await Promise.all(
  ['x0-4', 'gm-4'].map(async (name) => ({ name, ...(await loadAnyModel(`mnist/${name}`)) })),
);
const runs = students.map(({ model, manifest }) => async () => {
  const { x } = await sampleModel(model, manifest, noise, { labels });
  await x.data();
  x.dispose();
});
(await bestInterleaved(runs, repeats)).forEach((seconds, s) => {
  sampleSeconds[students[s]!.name] = seconds;
});
for (const [s, { name, model, manifest }] of students.entries()) {
  const { flops } = await countFlops(async () => (await sampleModel(model, manifest, noise, { labels })).x);
  const seconds = sampleSeconds[name]!;
  memoryRows.push(`| ${name}: sampling ${count} digits, 4 steps | ${await peakMB(runs[s]!)} |`);
  const g = gflops(flops, seconds);
  rows.push(
    `| ${name}: ${count} digits, 4 steps (network + policy) | ${(flops / 1e9).toFixed(2)} | ${(seconds * 1000).toFixed(0)} | ${g.toFixed(1)} | ${((100 * g) / probe).toFixed(0)} % |`,
  );
  model.dispose();
}
noise.dispose();

// One flow-matching training step of the shipped teacher's U-Net at batch `batch` (forward + backward + AdamW).
{
  const { model } = await loadAnyModel('mnist');
  if (!isFlowModel(model)) throw new Error('the shipped MNIST teacher is not a flow model');
  const optimizer = new AdamW(model.variables as tf.Variable[], { learningRate: 1e-4, beta2: 0.999 });
  const random = createRandom(1);
  const x0 = random.normalTensor([batch, 28, 28, 1]);
  const eps = random.normalTensor([batch, 28, 28, 1]);
  const sigma = tf.tensor1d(Array.from({ length: batch }, () => random.uniform()));
  const y = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 11),
    'int32',
  );
  const loss = () =>
    tf.tidy(() => {
      const column = tf.reshape(sigma, [batch, 1, 1, 1]);
      const xt = tf.add(tf.mul(tf.sub(1, column), x0), tf.mul(column, eps));
      const u = model.velocity(xt, sigma as tf.Tensor1D, { labels: y as tf.Tensor1D });
      return tf.mean(tf.square(tf.sub(u, tf.sub(eps, x0)))) as tf.Scalar;
    });
  const { flops } = await countFlops(() => {
    const { value, grads } = tf.variableGrads(loss, model.variables as tf.Variable[]);
    return [value, ...Object.values(grads)];
  });
  const seconds = await best(async () => {
    await optimizer.minimize(loss);
  });
  const g = gflops(flops, seconds);
  rows.push(
    `| teacher U-Net training step, batch ${batch} (fwd + bwd + AdamW) | ${(flops / 1e9).toFixed(2)} | ${(seconds * 1000).toFixed(0)} | ${g.toFixed(1)} | ${((100 * g) / probe).toFixed(0)} % |`,
  );
  memoryRows.push(
    `| teacher training step, batch ${batch} | ${await peakMB(() => optimizer.minimize(loss))} |`,
  );
  tf.dispose([x0, eps, sigma, y]);
  // Growth: `growthSteps` steps at batch 4 must leave the tensors and their bytes as they were.
  const small = createRandom(2);
  const xs = small.normalTensor([4, 28, 28, 1]);
  const es = small.normalTensor([4, 28, 28, 1]);
  const ss = tf.tensor1d([0.2, 0.4, 0.6, 0.8]);
  const ys = tf.tensor1d([0, 3, 7, 10], 'int32');
  const smallLoss = () =>
    tf.tidy(() => {
      const column = tf.reshape(ss, [4, 1, 1, 1]);
      const xt = tf.add(tf.mul(tf.sub(1, column), xs), tf.mul(column, es));
      const u = model.velocity(xt, ss as tf.Tensor1D, { labels: ys as tf.Tensor1D });
      return tf.mean(tf.square(tf.sub(u, tf.sub(es, xs)))) as tf.Scalar;
    });
  await optimizer.minimize(smallLoss);
  const before = tf.memory();
  for (let i = 0; i < growthSteps; i++) await optimizer.minimize(smallLoss);
  const after = tf.memory();
  memoryRows.push(
    `| growth over ${growthSteps} training steps (batch 4) | ${after.numTensors - before.numTensors} tensors, ${after.numBytes - before.numBytes} bytes |`,
  );
  tf.dispose([xs, es, ss, ys]);
  optimizer.dispose();
  model.dispose();
}

let piNote = '';
// One π-ID iteration: the shipped GM-4 student distilled from the shipped CFG teacher, batch `piBatch`
// (2 intermediate states, as `piflow distill` for images): teacher forwards + student forward/backward + AdamW.
{
  const resolved = await resolveTeacher('mnist');
  const loaded = await loadAnyModel('mnist/gm-4');
  if (isFlowModel(loaded.model)) throw new Error('mnist/gm-4 is not a student');
  const student = loaded.model as PolicyStudent;
  const family = loaded.families.get(student.family) as PolicyFamily<unknown, never>;
  // The shipped teacher answers synchronously (one student forward per iteration); the same teacher without
  // `velocitySync` makes the trainer run its two-phase iteration (the student's forward twice).
  const asyncOnly: Teacher = {
    metadata: resolved.teacher.metadata,
    velocity: (x, sigma, condition) => resolved.teacher.velocity(x, sigma, condition),
  };
  const trainers = [resolved.teacher, asyncOnly].map((teacher) =>
    createPiIDTrainer({
      student: student as unknown as TrainableStudent<unknown>,
      family,
      teacher,
      data: (n, r) => resolved.data!(n, r),
      batchSize: piBatch,
      numInferenceSteps: 4,
      shift: resolved.shift,
      numIntermediateStates: 2,
      optimizer: { learningRate: 1e-5 },
      ema: false,
      seed: 0,
    }),
  );
  const labels = ['', ', two phases (a teacher without velocitySync)'];
  const flopCounts: number[] = [];
  for (const trainer of trainers) {
    const { flops } = await countFlops(async () => {
      await trainer.trainStep();
      return [];
    });
    flopCounts.push(flops);
  }
  // interleaved, two more rounds than the other rows: a π-ID iteration swings most between runs
  const times = await bestInterleaved(
    trainers.map((trainer) => async () => {
      await trainer.trainStep();
    }),
    repeats + 2,
  );
  const measured: { flops: number; seconds: number }[] = [];
  for (const [i, trainer] of trainers.entries()) {
    const flops = flopCounts[i]!;
    const seconds = times[i]!;
    const g = gflops(flops, seconds);
    measured.push({ flops, seconds });
    rows.push(
      `| π-ID iteration, GM-4 from the CFG teacher, batch ${piBatch}${labels[i]} | ${(flops / 1e9).toFixed(2)} | ${(seconds * 1000).toFixed(0)} | ${g.toFixed(1)} | ${((100 * g) / probe).toFixed(0)} % |`,
    );
    memoryRows.push(
      `| π-ID iteration, batch ${piBatch}${labels[i]} | ${await peakMB(() => trainer.trainStep())} |`,
    );
  }
  for (const trainer of trainers) trainer.dispose();
  student.dispose();
  resolved.dispose();
  // Both compute the same update; at the two-phase iteration's FLOPs (the update's work as first counted) the
  // one-pass iteration's rate is its speed-up in the units of the first figure.
  const [one, two] = measured as [{ flops: number; seconds: number }, { flops: number; seconds: number }];
  piNote = `π-ID, one student forward vs two phases (the same update): ${(two.seconds / one.seconds).toFixed(2)}× faster; at the two-phase iteration's ${(two.flops / 1e9).toFixed(2)} GFLOP the one-pass iteration runs at ${gflops(two.flops, one.seconds).toFixed(1)} GFLOP/s`;
}

console.log(
  `backend ${backend} (${threads} thread${threads > 1 ? 's' : ''}, the probe too), Node ${process.version}, tfjs ${tf.version_core}; best of ${repeats} warm runs\n`,
);
console.log('| work | GFLOP (matMul + conv) | ms | effective GFLOP/s | of the probe |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log(`\n${piNote}`);
console.log(
  `\nGM-4 / single-x0 sampling time: ${(sampleSeconds['gm-4']! / sampleSeconds['x0-4']!).toFixed(2)}× (same network evaluations)`,
);
console.log('\n| memory | peak tensor MB (tf.profile) |');
console.log('|---|---|');
for (const r of memoryRows) console.log(r);
