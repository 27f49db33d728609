import { createRandom, type HeadOutputSpec, InvalidArgumentError, type PolicyFamily } from '@piflow/core';
import { countLeaks, maxAbsDifference, testBackends, useBackend } from '@piflow/core/testing';
import { type DXUParams, dx } from '@piflow/policy-dx';
import { type GMUParams, gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Backbone, createMLPBackbone, createUNetBackbone } from './backbone';
import { createFlowModel } from './flow-model';
import { createStudent, initStudentFromTeacher } from './policy-heads';
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

        it('GM head shapes, log-weights as logits, no leaks', () => {
          const student = createStudent<GMUParams>(layout.backbone(1), {
            family: gm,
            head: { numComponents: 5 },
          });
          const { x, sigma, labels, dispose } = inputs(layout.shape, 1);
          const { result, leaked } = countLeaks(() => student.predict(x, sigma, { labels }));
          expect(leaked).toBe(0);
          expect(result.space).toBe('u');
          expect(result.means.shape).toEqual([B, ...positions, 5, C]);
          expect(result.logweights.shape).toEqual([B, ...positions, 5]);
          expect(result.logstd.shape).toEqual([B]);
          // A fresh head's log-weights are all zero (zero kernel, no bias): equal weights, not normalised here
          // (GM normalises them where they are used).
          for (const v of result.logweights.dataSync()) expect(v).toBe(0);
          // Fresh head: log-std starts at log(0.05) (zero last layer).
          for (const v of result.logstd.dataSync()) expect(v).toBeCloseTo(Math.log(0.05), 5);
          tf.dispose([result.means, result.logweights, result.logstd]);
          dispose();
          student.dispose();
        });

        it('DX head shapes (grid-major), no leaks', () => {
          const student = createStudent<DXUParams>(layout.backbone(1), {
            family: dx,
            head: { numPoints: 4 },
            shift: 3,
            segmentSize: 0.5,
          });
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
          const student = createStudent<GMUParams>(layout.backbone(99), {
            family: gm,
            head: { numComponents: K },
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
            const student = createStudent<DXUParams>(teacher.backbone.clone(), {
              family: dx,
              head: { numPoints: 6, mode },
            });
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
          const student = createStudent<GMUParams>(layout.backbone(4), {
            family: gm,
            head: { numComponents: 3 },
          });
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
    expect(() => createStudent(backbone, { family: gm, head: { numComponents: 0 } })).toThrow(
      /options.head.numComponents/,
    );
    expect(() => createStudent(backbone, { family: gm, head: { components: 2 } })).toThrow(
      /options.head.components.*numComponents/,
    );
    expect(() => createStudent({} as Backbone, { family: gm })).toThrow(InvalidArgumentError);
    expect(() => createStudent(backbone, { family: {} as never })).toThrow(/options.family/);
    const { studentHead: _, ...headless } = gm;
    expect(() => createStudent(backbone, { family: headless as never })).toThrow(/studentHead/);
    expect(() => createStudent(backbone, { family: dx, head: { numPoints: 3, mode: 'cubic' } })).toThrow(
      /options.head.mode/,
    );
    expect(() => createStudent(backbone, { family: dx, segmentSize: 0 })).toThrow(/options.segmentSize/);
    const student = createStudent(backbone, { family: dx, head: { numPoints: 3 } });
    const x = tf.zeros([2, 3]);
    const sigma = tf.ones([2]) as tf.Tensor1D;
    expect(() => student.predict(x, sigma)).toThrow(/`x`/);
    const x2 = tf.zeros([2, 2]);
    expect(() => student.predict(x2, tf.ones([3]) as tf.Tensor1D)).toThrow(/`sigma`/);
    expect(() => student.predict(x2, sigma, { labels: tf.zeros([2], 'int32') })).toThrow(/condition.labels/);
    // Teacher/student architecture mismatch and the teacher's own backbone.
    const teacher = createFlowModel(createMLPBackbone({ inputDim: 2, width: 16, depth: 1 }));
    expect(() => initStudentFromTeacher(student, teacher)).toThrow(/teacher/);
    const shared = createStudent(teacher.backbone, { family: dx, head: { numPoints: 2 } });
    expect(() => initStudentFromTeacher(shared, teacher)).toThrow(/student.backbone/);
    expect(() => initStudentFromTeacher({} as never, teacher)).toThrow(/`student`/);
    expect(() => createUNetBackbone({ channels: [], inChannels: 1 })).toThrow(/options.channels/);
    expect(() => createUNetBackbone({ channels: [4], inChannels: 1, norm: 'batch' as never })).toThrow(
      /options.norm.*'none' or 'group'/,
    );
    expect(() => createUNetBackbone({ channels: [4], inChannels: 1, norm: 'group', normGroups: 0 })).toThrow(
      /options.normGroups/,
    );
    const unet = createUNetBackbone({ channels: [2, 2, 2], inChannels: 1 });
    expect(() => unet.apply(tf.zeros([1, 6, 6, 1]), tf.ones([1]) as tf.Tensor1D)).toThrow(/divisible by 4/);
    tf.dispose([x, x2, sigma]);
    unet.dispose();
    student.dispose();
    teacher.dispose();
  });
});

describe('heads of a user family (built from its studentHead description only)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  const custom = (outputs: Record<string, HeadOutputSpec>): PolicyFamily => ({
    specificationVersion: 'v2',
    name: 'custom',
    packageName: 'piflow-policy-custom',
    paramShapes: () => ({}),
    create: () => {
      throw new Error('not used');
    },
    studentHead: {
      options: { width: { type: 'integer', min: 1, default: 3, description: 'block width' } },
      build: ({ options, shift, segmentSize }) => ({
        outputs,
        policyOptions: { shift, segmentSize, width: options.width },
      }),
    },
  });

  it('lays out per-position and per-sample blocks, applies log-softmax and records its options', () => {
    const family = custom({
      a: { per: 'position', shape: [3, 2], layout: 'block-first' },
      b: { per: 'position', shape: [4], activation: 'logSoftmax', init: { bias: { constant: 0.5 } } },
      c: { per: 'sample', shape: [2], hiddenDim: 5, init: { kernel: 'zeros', bias: { constant: 2 } } },
    });
    const backbone = createUNetBackbone({ channels: [4, 8], inChannels: 2, embeddingDim: 8, seed: 1 });
    const student = createStudent<Record<string, tf.Tensor>>(backbone, {
      family,
      shift: 3,
      segmentSize: 0.5,
    });
    expect(student.family).toBe('custom');
    expect(student.familyPackage).toBe('piflow-policy-custom');
    expect(student.headOptions).toEqual({ width: 3 });
    expect(student.policyOptions).toEqual({ shift: 3, segmentSize: 0.5, width: 3 });
    expect(student.variableNames.slice(-8)).toEqual([
      'head/a/kernel',
      'head/a/bias',
      'head/b/kernel',
      'head/b/bias',
      'head/c1/kernel',
      'head/c1/bias',
      'head/c2/kernel',
      'head/c2/bias',
    ]);
    const x = createRandom(2).normalTensor([2, 4, 4, 2]);
    const sigma = tf.tensor1d([0.3, 0.8]);
    const { result, leaked } = countLeaks(() => student.predict(x, sigma));
    expect(leaked).toBe(0);
    expect(Object.keys(result)).toEqual(['a', 'b', 'c']); // no `space`: the family gave none
    expect(result.a!.shape).toEqual([2, 3, 4, 4, 2]);
    expect(result.b!.shape).toEqual([2, 4, 4, 4]);
    expect(result.c!.shape).toEqual([2, 2]);
    // block-first is the positions-first block with its first axis moved after the batch axis
    const flat = tf.tidy(() => {
      const { features } = backbone.apply(x, sigma);
      const a = student.variables[student.variableNames.indexOf('head/a/kernel')]!;
      const bias = student.variables[student.variableNames.indexOf('head/a/bias')]!;
      const y = tf.add(tf.matMul(tf.reshape(features, [-1, features.shape[3]!]), a), bias);
      return tf.transpose(tf.reshape(y, [2, 4, 4, 3, 2]), [0, 3, 1, 2, 4]);
    });
    expect(maxAbsDifference(result.a!.dataSync(), flat.dataSync())).toBeLessThan(1e-6);
    const sums = tf.tidy(() => tf.sum(tf.exp(result.b!), -1).dataSync());
    for (const s of sums) expect(s).toBeCloseTo(1, 5);
    expect(Array.from(result.c!.dataSync())).toEqual([2, 2, 2, 2]); // zero kernel, constant bias
    tf.dispose([x, sigma, flat, ...Object.values(result)]);
    student.dispose();
  });

  it("rejects a head description that cannot be built, naming the family's output", () => {
    const backbone = createMLPBackbone({ inputDim: 2, width: 8, depth: 1 });
    expect(() =>
      createStudent(backbone, { family: custom({ a: { per: 'pixel' as never, shape: [2] } }) }),
    ).toThrow(/family "custom" studentHead output "a".per/);
    expect(() => createStudent(backbone, { family: custom({ a: { per: 'position', shape: [0] } }) })).toThrow(
      /output "a".shape/,
    );
    expect(() =>
      createStudent(backbone, {
        family: custom({ a: { per: 'sample', shape: [2], layout: 'block-first' } }),
      }),
    ).toThrow(/output "a".layout/);
    const teacher = createFlowModel(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }));
    expect(() =>
      createStudent(teacher.backbone.clone(), {
        family: custom({ a: { per: 'position', shape: [3], fromTeacher: 'replicate' } }),
      }),
    ).toThrow(/a block ending in the 2 channels/);
    teacher.dispose();
    backbone.dispose();
  });
});
