import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPolicyRegistry, createRandom, UnknownPolicyFamilyError } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMLPBackbone, createUNetBackbone } from './backbone';
import { createFlowModel, isFlowModel } from './flow-model';
import {
  describeModel,
  encodeWeights,
  loadModel,
  loadModelDirectory,
  type ModelManifest,
  type StoredModel,
  saveModelDirectory,
} from './model-io';
import { createStudent } from './policy-heads';

const families = createPolicyRegistry({ gm, dx });

/** Gives every variable random values (fresh heads have zero layers that would hide a lost weight). */
function randomise(model: StoredModel, seed: number): void {
  const random = createRandom(seed);
  tf.tidy(() => {
    for (const v of model.variables) v.assign(tf.mul(random.normalTensor(v.shape), 0.3));
  });
}

/** Every output tensor of a model at (x, σ), flattened in key order. */
function outputs(model: StoredModel, x: tf.Tensor, sigma: tf.Tensor1D): Record<string, Float32Array> {
  if (isFlowModel(model)) {
    const u = model.velocity(x, sigma);
    const out = { velocity: u.dataSync() as Float32Array };
    u.dispose();
    return out;
  }
  const params = model.predict(x, sigma) as Record<string, unknown>;
  const out: Record<string, Float32Array> = {};
  for (const [key, value] of Object.entries(params)) {
    if (value instanceof tf.Tensor) {
      out[key] = value.dataSync() as Float32Array;
      value.dispose();
    }
  }
  return out;
}

describe('model files', () => {
  beforeAll(() => useBackend('cpu'));

  it('round-trip flow models and GM/DX students (MLP and U-Net) exactly, every output compared', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-model-'));
    const mlp = (seed: number) => createMLPBackbone({ inputDim: 3, width: 16, depth: 1, seed });
    const unet = (seed: number) =>
      createUNetBackbone({ channels: [4, 8], inChannels: 3, embeddingDim: 8, seed });
    const cases: { model: StoredModel; shape: number[] }[] = [];
    for (const [backbone, shape] of [
      [mlp, [4, 3]],
      [unet, [4, 4, 4, 3]],
    ] as const) {
      cases.push(
        { model: createFlowModel(backbone(5)), shape: [...shape] },
        {
          model: createStudent(backbone(6), { family: gm, head: { numComponents: 4, logstdHiddenDim: 8 } }),
          shape: [...shape],
        },
        {
          model: createStudent(backbone(7), {
            family: dx,
            head: { numPoints: 3, mode: 'polynomial' },
            shift: 2,
            segmentSize: 0.25,
          }),
          shape: [...shape],
        },
      );
    }
    const sigma = tf.tensor1d([0.2, 0.5, 0.7, 1]);
    for (const [i, { model, shape }] of cases.entries()) {
      randomise(model, 10 + i);
      const sub = path.join(dir, String(i));
      await saveModelDirectory(sub, model, { sampleShape: shape.slice(1), sampling: { shift: 2 } });
      const { model: loaded, manifest } = await loadModelDirectory(sub, { families });
      expect(manifest.sampling?.shift).toBe(2);
      if (!isFlowModel(model)) {
        expect(manifest.family).toEqual({
          name: model.family,
          specificationVersion: 'v2',
          package: `@piflow/policy-${model.family}`,
        });
        expect(isFlowModel(loaded) ? undefined : loaded.policyOptions).toEqual(model.policyOptions);
      }
      const x = createRandom(i).normalTensor(shape);
      const a = outputs(model, x, sigma);
      const b = outputs(loaded, x, sigma);
      expect(Object.keys(b)).toEqual(Object.keys(a));
      expect(Object.keys(a).length).toBe(isFlowModel(model) ? 1 : model.family === 'gm' ? 3 : 1);
      for (const key of Object.keys(a)) expect(b[key], `${i} ${key}`).toEqual(a[key]);
      x.dispose();
      loaded.dispose();
      model.dispose();
    }
    sigma.dispose();
  });

  it('a student whose family is not registered names the family and the package to install', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-model-'));
    const student = createStudent(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }), { family: dx });
    await saveModelDirectory(dir, student, { sampleShape: [2] });
    const load = () => loadModelDirectory(dir, { families: [gm] });
    await expect(load()).rejects.toThrow(UnknownPolicyFamilyError);
    await expect(load()).rejects.toThrow(
      /policy family "dx" from the npm package "@piflow\/policy-dx".*npm i @piflow\/policy-dx.*--plugin @piflow\/policy-dx/,
    );
    await expect(loadModelDirectory(dir)).rejects.toThrow(/known: none/);
    student.dispose();
  });

  it('reads version 1 files (gm-student / dx-student) as students of their family', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-model-'));
    const student = createStudent(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }), {
      family: dx,
      head: { numPoints: 4 },
      shift: 3,
      segmentSize: 0.5,
    });
    randomise(student, 1);
    await saveModelDirectory(dir, student, { sampleShape: [2] });
    const v2 = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as ModelManifest;
    const { family: _f, policyOptions: _p, ...rest } = v2;
    const v1 = {
      ...rest,
      version: 1,
      kind: 'dx-student',
      head: { numPoints: 4, shift: 3, segmentSize: 0.5, mode: 'grid' },
      sampling: { temperature: 0.3 },
    };
    await writeFile(path.join(dir, 'model.json'), JSON.stringify(v1));
    const { model, manifest } = await loadModelDirectory(dir, { families });
    expect(manifest.family?.name).toBe('dx');
    expect(manifest.sampling?.familyOptions).toEqual({ temperature: 0.3 });
    expect(isFlowModel(model) ? undefined : model.policyOptions).toEqual({
      shift: 3,
      segmentSize: 0.5,
      mode: 'grid',
    });
    const x = createRandom(2).normalTensor([3, 2]);
    const sigma = tf.tensor1d([0.3, 0.6, 0.9]);
    expect(outputs(model, x, sigma)).toEqual(outputs(student, x, sigma));
    tf.dispose([x, sigma]);
    model.dispose();
    student.dispose();
  });

  it('refuses weights that do not fit the manifest, naming what is wrong', () => {
    const model = createFlowModel(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }));
    const manifest = describeModel(model, { sampleShape: [2] });
    const weights = encodeWeights(model.variables);
    expect(() => loadModel(manifest, weights.subarray(0, weights.length - 4))).toThrow(/weights hold/);
    const renamed = {
      ...manifest,
      variables: manifest.variables.map((v, i) => (i === 0 ? { ...v, name: 'other' } : v)),
    };
    expect(() => loadModel(renamed, weights)).toThrow(/Variable 0 is "other"/);
    expect(() => loadModel({ ...manifest, format: 'x' as never }, weights)).toThrow(/manifest.format/);
    expect(() => loadModel({ ...manifest, version: 3 as never }, weights)).toThrow(/manifest.version/);
    model.dispose();
  });
});
