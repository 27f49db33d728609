import { createRandom, InvalidArgumentError } from '@piflow/core';
import { countLeaks, maxAbsDifference, testBackends, useBackend } from '@piflow/core/testing';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Backbone, createMLPBackbone, createUNetBackbone } from './backbone';
import { createFlowModel } from './flow-model';
import { createDXStudent, createGMStudent, initStudentFromTeacher } from './policy-heads';
import { registerWasmTrainingKernels } from './wasm-training-kernels';

const B = 3;

interface Layout {
  name: string;
  backbone: (seed: number) => Backbone;
  shape: number[];
}

const layouts: Layout[] = [
  {
    name: 'vectors [B, C]',
    backbone: (seed) => createMLPBackbone({ inputDim: 2, width: 32, depth: 2, numClasses: 4, seed }),
    shape: [B, 2],
  },
  {
    name: 'images [B, H, W, C]',
    backbone: (seed) =>
      createUNetBackbone({ channels: [4, 8], inChannels: 3, numClasses: 4, embeddingDim: 16, seed }),
    shape: [B, 8, 8, 3],
  },
];

function inputs(shape: number[], seed: number) {
  const random = createRandom(seed);
  const x = random.normalTensor(shape);
  const sigma = tf.tensor1d([0.9, 0.5, 0.2]);
  const labels = tf.tensor1d([0, 3, 4], 'int32'); // 4 = the null label
  return { x, sigma, labels, dispose: () => tf.dispose([x, sigma, labels]) };
}

for (const backend of testBackends()) {
  describe(`policy heads on ${backend}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
      if (backend === 'wasm') registerWasmTrainingKernels();
    });

    for (const layout of layouts) {
      describe(layout.name, () => {
        const positions = layout.shape.slice(1, -1);
        const C = layout.shape[layout.shape.length - 1]!;

        it('GM head shapes, normalised log-weights, no leaks', () => {
          const student = createGMStudent(layout.backbone(1), { numComponents: 5 });
          const { x, sigma, labels, dispose } = inputs(layout.shape, 1);
          const { result, leaked } = countLeaks(() => student.predict(x, sigma, { labels }));
          expect(leaked).toBe(0);
          expect(result.space).toBe('u');
          expect(result.means.shape).toEqual([B, ...positions, 5, C]);
          expect(result.logweights.shape).toEqual([B, ...positions, 5]);
          expect(result.logstd.shape).toEqual([B]);
          const sums = tf.tidy(() => tf.sum(tf.exp(result.logweights), -1).dataSync());
          for (const s of sums) expect(s).toBeCloseTo(1, 5);
          // Fresh head: log-std starts at log(0.05) (zero last layer).
          for (const v of result.logstd.dataSync()) expect(v).toBeCloseTo(Math.log(0.05), 5);
          tf.dispose([result.means, result.logweights, result.logstd]);
          dispose();
          student.dispose();
        });

        it('DX head shapes (grid-major), no leaks', () => {
          const student = createDXStudent(layout.backbone(1), { numPoints: 4, shift: 3, segmentSize: 0.5 });
          expect(student.policyOptions).toEqual({ shift: 3, segmentSize: 0.5, mode: 'grid' });
          const { x, sigma, labels, dispose } = inputs(layout.shape, 1);
          const { result, leaked } = countLeaks(() => student.predict(x, sigma, { labels }));
          expect(leaked).toBe(0);
          expect(result.uGrid.shape).toEqual([B, 4, ...positions, C]);
          result.uGrid.dispose();
          dispose();
          student.dispose();
        });

        it('the initial GM policy reproduces the teacher velocity at (x_src, σ_src) up to the mean init noise', () => {
          const teacher = createFlowModel(layout.backbone(7), { seed: 8 });
          const K = 8;
          const noiseScale = 0.05;
          const student = createGMStudent(layout.backbone(99), {
            numComponents: K,
            initFrom: teacher,
            init: { noiseScale, seed: 42 },
          });
          const { x, sigma, labels, dispose } = inputs(layout.shape, 2);
          const uTeacher = teacher.velocity(x, sigma, { labels });
          const params = student.predict(x, sigma, { labels });
          const policy = gm.create(params, x, sigma);
          const uPolicy = policy.velocity(x, sigma);
          // Uniform weights ⇒ u_policy = u_teacher + mean_k(noise_k) per channel, the noise drawn from seed 42.
          const noise = createRandom(42).fillNormal(new Float32Array(K * C));
          const offset = new Float32Array(C);
          for (let k = 0; k < K; k++)
            for (let c = 0; c < C; c++) offset[c]! += (noiseScale * noise[k * C + c]!) / K;
          const expected = tf.tidy(() => tf.add(uTeacher, tf.tensor1d(offset)).dataSync());
          // float32: the policy goes through x0 = x − σ·μ and back (/σ), σ ≥ 0.2 ⇒ error ≲ 1e-5·|x|/σ.
          expect(maxAbsDifference(uPolicy.dataSync(), expected)).toBeLessThan(2e-4);
          // And the policy is close to the teacher itself: |offset| ≤ 4·0.05/√K.
          expect(maxAbsDifference(uPolicy.dataSync(), uTeacher.dataSync())).toBeLessThan(
            (4 * noiseScale) / Math.sqrt(K),
          );
          for (const v of params.logstd.dataSync()) expect(v).toBeCloseTo(Math.log(0.05), 5);
          tf.dispose([uTeacher, params.means, params.logweights, params.logstd, uPolicy]);
          policy.dispose();
          dispose();
          teacher.dispose();
          student.dispose();
        });

        for (const mode of ['grid', 'polynomial'] as const) {
          it(`the initial DX policy (${mode}) equals the teacher velocity at (x_src, σ_src)`, () => {
            const teacher = createFlowModel(layout.backbone(7), { seed: 8 });
            const student = createDXStudent(teacher.backbone.clone(), { numPoints: 6, mode });
            expect(countLeaks(() => initStudentFromTeacher(student, teacher)).leaked).toBe(0);
            const { x, sigma, labels, dispose } = inputs(layout.shape, 3);
            const { result: uTeacher, leaked } = countLeaks(() => teacher.velocity(x, sigma, { labels }));
            expect(leaked).toBe(0);
            const params = student.predict(x, sigma, { labels });
            const policy = dx.create(params, x, sigma, student.policyOptions);
            const uPolicy = policy.velocity(x, sigma);
            expect(maxAbsDifference(uPolicy.dataSync(), uTeacher.dataSync())).toBeLessThan(2e-4);
            tf.dispose([uTeacher, params.uGrid, uPolicy]);
            policy.dispose();
            dispose();
            teacher.dispose();
            student.dispose();
          });
        }

        it('gradients reach every variable; the log-std gradient stops at the head', () => {
          const student = createGMStudent(layout.backbone(4), { numComponents: 3 });
          const { x, sigma, labels, dispose } = inputs(layout.shape, 4);
          const random = createRandom(9);
          // The log-std MLP's last layer starts at zero (as in the reference), which zeroes the gradient of
          // the layer before it at initialisation; give it values so every path is exercised.
          const last = student.variables[student.variableNames.indexOf('head/logstd2/kernel')]!;
          tf.tidy(() => last.assign(random.normalTensor(last.shape)));
          const before = tf.memory().numTensors;
          const { value, grads } = tf.variableGrads(
            () =>
              tf.tidy(() => {
                const p = student.predict(x, sigma, { labels });
                const r = (t: tf.Tensor) => tf.sum(tf.mul(t, random.normalTensor(t.shape)));
                return tf.addN([r(p.means), r(p.logweights), r(p.logstd)]) as tf.Scalar;
              }),
            student.variables as tf.Variable[],
          );
          for (const v of student.variables) {
            const g = grads[v.name];
            expect(g, v.name).toBeDefined();
            expect(
              tf.tidy(() => tf.max(tf.abs(g!)).dataSync()[0]!),
              v.name,
            ).toBeGreaterThan(0);
          }
          tf.dispose([value, ...Object.values(grads)]);
          expect(tf.memory().numTensors).toBe(before);

          // Only the log-std: no gradient reaches the backbone (detached input, as in the reference).
          const logstdOnly = tf.variableGrads(
            () => tf.tidy(() => tf.sum(student.predict(x, sigma, { labels }).logstd) as tf.Scalar),
            student.variables as tf.Variable[],
          );
          for (const v of student.backbone.variables) {
            const g = logstdOnly.grads[v.name];
            if (g) expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!)).toBe(0);
          }
          tf.dispose([logstdOnly.value, ...Object.values(logstdOnly.grads)]);
          dispose();
          student.dispose();
        });
      });
    }
  });
}

describe('policy heads: arguments', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('rejects bad options and inputs with named errors', () => {
    const backbone = createMLPBackbone({ inputDim: 2, width: 8, depth: 1 });
    expect(() => createGMStudent(backbone, { numComponents: 0 })).toThrow(/options.numComponents/);
    expect(() => createGMStudent({} as Backbone, { numComponents: 2 })).toThrow(InvalidArgumentError);
    expect(() => createDXStudent(backbone, { numPoints: 3, mode: 'cubic' as 'grid' })).toThrow(
      /options.mode/,
    );
    expect(() => createDXStudent(backbone, { numPoints: 3, segmentSize: 0 })).toThrow(/options.segmentSize/);
    const student = createDXStudent(backbone, { numPoints: 3 });
    const x = tf.zeros([2, 3]);
    const sigma = tf.ones([2]) as tf.Tensor1D;
    expect(() => student.predict(x, sigma)).toThrow(/`x`/);
    const x2 = tf.zeros([2, 2]);
    expect(() => student.predict(x2, tf.ones([3]) as tf.Tensor1D)).toThrow(/`sigma`/);
    expect(() => student.predict(x2, sigma, { labels: tf.zeros([2], 'int32') })).toThrow(/condition.labels/);
    // Teacher/student architecture mismatch and the teacher's own backbone.
    const teacher = createFlowModel(createMLPBackbone({ inputDim: 2, width: 16, depth: 1 }));
    expect(() => initStudentFromTeacher(student, teacher)).toThrow(/teacher/);
    const shared = createDXStudent(teacher.backbone, { numPoints: 2 });
    expect(() => initStudentFromTeacher(shared, teacher)).toThrow(/student.backbone/);
    expect(() => initStudentFromTeacher({} as never, teacher)).toThrow(/`student`/);
    expect(() => createUNetBackbone({ channels: [], inChannels: 1 })).toThrow(/options.channels/);
    const unet = createUNetBackbone({ channels: [2, 2, 2], inChannels: 1 });
    expect(() => unet.apply(tf.zeros([1, 6, 6, 1]), tf.ones([1]) as tf.Tensor1D)).toThrow(/divisible by 4/);
    tf.dispose([x, x2, sigma]);
    unet.dispose();
    student.dispose();
    teacher.dispose();
  });
});
