import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
  loadModelFrom,
  type ModelFileJSON,
  SAFETENSORS_FILE,
  type StoredModel,
  saveModel,
  saveModelDirectory,
} from './model-io';
import { createStudent } from './policy-heads';
import { decodeSafetensors, encodeSafetensors } from './safetensors';

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
    const unetGroupNorm = (seed: number) =>
      createUNetBackbone({
        channels: [4, 8],
        inChannels: 3,
        embeddingDim: 8,
        norm: 'group',
        normGroups: 2,
        seed,
      });
    const cases: { model: StoredModel; shape: number[] }[] = [];
    for (const [backbone, shape] of [
      [mlp, [4, 3]],
      [unet, [4, 4, 4, 3]],
      [unetGroupNorm, [4, 4, 4, 3]],
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
    const file = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as ModelFileJSON;
    const { family: _f, policyOptions: _p, ...rest } = file.modelTopology;
    await rm(path.join(dir, 'model.safetensors'));
    await writeFile(path.join(dir, 'weights.bin'), encodeWeights(student.variables));
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

  it('folders hold model.json and model.safetensors; PyTorch-style safetensors (any order, F16, no padding) load', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-model-'));
    const student = createStudent(createMLPBackbone({ inputDim: 2, width: 8, depth: 1, seed: 3 }), {
      family: gm,
      head: { numComponents: 2, logstdHiddenDim: 4 },
    });
    randomise(student, 4);
    await saveModelDirectory(dir, student, { sampleShape: [2] });
    const file = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as ModelFileJSON;
    expect(file.format).toBe('piflow-model');
    expect(file.modelTopology.family?.name).toBe('gm');
    expect(file.weightsManifest[0]!.paths).toEqual([SAFETENSORS_FILE]);
    const bytes = new Uint8Array(await readFile(path.join(dir, SAFETENSORS_FILE)));
    const decoded = decodeSafetensors(bytes);
    expect(decoded.dataOffset % 8).toBe(0);
    expect(file.weightsManifest[0]!.weights[0]).toEqual({
      name: '__safetensors_header__',
      shape: [decoded.dataOffset / 4],
      dtype: 'int32',
    });
    expect(decoded.tensors.map((t) => t.name)).toEqual(student.variableNames);
    // What a PyTorch user writes back: other order, half precision, an unpadded header of their own.
    const tensors = [...decoded.tensors].reverse();
    const header: Record<string, unknown> = {};
    let offset = 0;
    const halves: Uint16Array[] = [];
    for (const t of tensors) {
      const h = Uint16Array.from(t.data, (v) => toHalf(v));
      header[t.name] = { dtype: 'F16', shape: t.shape, data_offsets: [offset, offset + 2 * h.length] };
      offset += 2 * h.length;
      halves.push(h);
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const torch = new Uint8Array(8 + json.length + offset);
    new DataView(torch.buffer).setBigUint64(0, BigInt(json.length), true);
    torch.set(json, 8);
    let at = 8 + json.length;
    for (const h of halves) {
      torch.set(new Uint8Array(h.buffer), at);
      at += h.byteLength;
    }
    await writeFile(path.join(dir, SAFETENSORS_FILE), torch);
    const { model } = await loadModelDirectory(dir, { families });
    const x = createRandom(5).normalTensor([3, 2]);
    const sigma = tf.tensor1d([0.2, 0.5, 0.9]);
    const a = outputs(student, x, sigma);
    const b = outputs(model, x, sigma);
    for (const key of Object.keys(a)) {
      const scale = Math.max(...a[key]!.map(Math.abs));
      for (let i = 0; i < a[key]!.length; i++)
        expect(Math.abs(a[key]![i]! - b[key]![i]!)).toBeLessThan(5e-3 * scale + 5e-3);
    }
    // a tensor missing or of the wrong shape is named
    const missing = encodeSafetensors(decoded.tensors.slice(1));
    await writeFile(path.join(dir, SAFETENSORS_FILE), missing);
    await expect(loadModelDirectory(dir, { families })).rejects.toThrow(
      `no tensor "${student.variableNames[0]}"`,
    );
    // a NaN among the weights: refused, naming the file, the tensor and the index
    const poisoned = decoded.tensors.map((t, i) =>
      i === 1 ? { ...t, data: Float32Array.from(t.data, (v, j) => (j === 2 ? Number.NaN : v)) } : t,
    );
    await writeFile(path.join(dir, SAFETENSORS_FILE), encodeSafetensors(poisoned));
    await expect(loadModelDirectory(dir, { families })).rejects.toThrow(
      `${path.join(dir, SAFETENSORS_FILE)}: The weights hold a non-finite value (NaN) in "${student.variableNames[1]}" at index 2`,
    );
    tf.dispose([x, sigma]);
    model.dispose();
    student.dispose();
  });

  it('saves and loads through tf.io handlers: any IOHandler, and model.json over tf.io.http', async () => {
    const student = createStudent(createMLPBackbone({ inputDim: 2, width: 8, depth: 1, seed: 6 }), {
      family: dx,
      head: { numPoints: 3 },
      shift: 2,
      segmentSize: 0.5,
    });
    randomise(student, 7);
    let stored: tf.io.ModelArtifacts | undefined;
    const memory: tf.io.IOHandler = {
      save: async (artifacts) => {
        stored = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      },
      load: async () => stored!,
    };
    await saveModel(student, memory, { sampleShape: [2], sampling: { numInferenceSteps: 2 } });
    const fromMemory = await loadModelFrom(memory, { families });
    expect(fromMemory.manifest.sampling?.numInferenceSteps).toBe(2);
    // a folder served over HTTP, read by tfjs's own http handler
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-model-'));
    await saveModelDirectory(dir, student, { sampleShape: [2] });
    const fetchFunc = (async (url: string) =>
      new Response(
        new Uint8Array(await readFile(path.join(dir, path.basename(new URL(url).pathname)))),
      )) as typeof fetch;
    const overHttp = await loadModelFrom(tf.io.http('https://models.test/dx/model.json', { fetchFunc }), {
      families,
    });
    const x = createRandom(8).normalTensor([4, 2]);
    const sigma = tf.tensor1d([0.1, 0.4, 0.6, 1]);
    const expected = outputs(student, x, sigma);
    expect(outputs(fromMemory.model, x, sigma)).toEqual(expected);
    expect(outputs(overHttp.model, x, sigma)).toEqual(expected);
    await expect(loadModelFrom('nowhere://x', { families })).rejects.toThrow(/source/);
    await expect(saveModel(student, 'nowhere://x', { sampleShape: [2] })).rejects.toThrow(/destination/);
    tf.dispose([x, sigma]);
    fromMemory.model.dispose();
    overHttp.model.dispose();
    student.dispose();
  });
});

/** float32 → IEEE half (round to nearest), as PyTorch's .half() stores it. */
function toHalf(value: number): number {
  const f = new Float32Array([value]);
  const bits = new Uint32Array(f.buffer)[0]!;
  const sign = (bits >> 16) & 0x8000;
  const exponent = ((bits >> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (exponent <= 0) return sign;
  if (exponent >= 31) return sign | 0x7c00;
  return sign + (exponent << 10) + Math.round(mantissa / 8192); // a rounding carry moves into the exponent
}
