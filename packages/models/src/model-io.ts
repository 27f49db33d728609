import { assertNumber, describeValue, InvalidArgumentError, PiflowError } from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
import {
  type Backbone,
  createMLPBackbone,
  createUNetBackbone,
  type MLPBackboneOptions,
  type UNetBackboneOptions,
} from './backbone';
import { createFlowModel, type FlowModel, isFlowModel } from './flow-model';
import { createDXStudent, createGMStudent, type DXStudent, type GMStudent } from './policy-heads';
import { getWeights, setWeights } from './weights';

/** How a trained model is described on disk or over HTTP: `model.json` beside a float32 `weights.bin`. */
export interface ModelManifest {
  format: 'piflow-model';
  version: 1;
  kind: 'flow-model' | 'gm-student' | 'dx-student';
  backbone: { kind: 'mlp' | 'unet'; config: MLPBackboneOptions | UNetBackboneOptions };
  /** Student heads: GM { numComponents, logstdHiddenDim } or DX { numPoints, shift, segmentSize, mode }. */
  head?: Record<string, number | string>;
  /** Shape of one sample, without the batch axis (e.g. [2] or [28, 28, 1]). */
  sampleShape: number[];
  /** Variables in order, with their stable names and shapes. */
  variables: { name: string; shape: number[] }[];
  /** How to sample it: shift, steps the student was trained for, final step scale, guidance, temperature. */
  sampling?: {
    shift?: number;
    numInferenceSteps?: number;
    finalStepSizeScale?: number;
    guidanceScale?: number;
    temperature?: number;
  };
  /** Free-form: the command that produced it, training steps, metrics. */
  metadata?: Record<string, unknown>;
}

export type StoredModel = FlowModel | GMStudent | DXStudent;

function isStudent(model: StoredModel): model is GMStudent | DXStudent {
  return !isFlowModel(model);
}

/** Describes a flow model or student for storage (its weights are not included; see {@link encodeWeights}). */
export function describeModel(
  model: StoredModel,
  extras: Pick<ModelManifest, 'sampleShape'> & Partial<Pick<ModelManifest, 'sampling' | 'metadata'>>,
): ModelManifest {
  const backbone = model.backbone;
  let kind: ModelManifest['kind'] = 'flow-model';
  let head: ModelManifest['head'];
  if (isStudent(model)) {
    if (model.family === 'gm') {
      kind = 'gm-student';
      const i = model.variableNames.findIndex((n) => n.startsWith('head/logstd1'));
      const hidden = i >= 0 ? model.variables[i]!.shape[model.variables[i]!.shape.length - 1]! : 128;
      head = { numComponents: model.numComponents, logstdHiddenDim: hidden };
    } else {
      kind = 'dx-student';
      head = { numPoints: model.numPoints, ...model.policyOptions };
    }
  }
  return {
    format: 'piflow-model',
    version: 1,
    kind,
    backbone: {
      kind: backbone.kind,
      config: { ...backbone.config } as MLPBackboneOptions | UNetBackboneOptions,
    },
    ...(head ? { head } : {}),
    sampleShape: [...extras.sampleShape],
    variables: model.variables.map((v, i) => ({ name: model.variableNames[i]!, shape: [...v.shape] })),
    ...(extras.sampling ? { sampling: extras.sampling } : {}),
    ...(extras.metadata ? { metadata: extras.metadata } : {}),
  };
}

/** The variables' values as one little-endian float32 buffer, in order. */
export function encodeWeights(variables: readonly tf.Variable[]): Uint8Array {
  const arrays = getWeights(variables);
  const total = arrays.reduce((a, b) => a + b.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return new Uint8Array(out.buffer);
}

function buildBackbone(manifest: ModelManifest): Backbone {
  const { kind, config } = manifest.backbone;
  if (kind === 'mlp') return createMLPBackbone(config as MLPBackboneOptions);
  if (kind === 'unet') return createUNetBackbone(config as UNetBackboneOptions);
  throw new InvalidArgumentError('manifest.backbone.kind', "'mlp' or 'unet'", describeValue(kind));
}

/** Builds the architecture a manifest describes (fresh weights). */
export function buildModel(manifest: ModelManifest): StoredModel {
  if (!manifest || manifest.format !== 'piflow-model') {
    throw new InvalidArgumentError('manifest.format', "'piflow-model'", describeValue(manifest?.format));
  }
  if (manifest.version !== 1)
    throw new InvalidArgumentError('manifest.version', '1', describeValue(manifest.version));
  const backbone = buildBackbone(manifest);
  const head = manifest.head ?? {};
  switch (manifest.kind) {
    case 'flow-model':
      return createFlowModel(backbone);
    case 'gm-student':
      assertNumber('manifest.head.numComponents', head.numComponents, { min: 1, integer: true });
      return createGMStudent(backbone, {
        numComponents: head.numComponents as number,
        logstdHiddenDim: (head.logstdHiddenDim as number | undefined) ?? 128,
      });
    case 'dx-student':
      assertNumber('manifest.head.numPoints', head.numPoints, { min: 1, integer: true });
      return createDXStudent(backbone, {
        numPoints: head.numPoints as number,
        shift: head.shift as number | undefined,
        segmentSize: head.segmentSize as number | undefined,
        mode: head.mode as 'grid' | 'polynomial' | undefined,
      });
    default:
      throw new InvalidArgumentError(
        'manifest.kind',
        "'flow-model', 'gm-student' or 'dx-student'",
        describeValue(manifest.kind),
      );
  }
}

/** Builds the model and loads its weights, checking every variable's name and shape against the manifest. */
export function loadModel(manifest: ModelManifest, weights: ArrayBuffer | Uint8Array): StoredModel {
  const model = buildModel(manifest);
  try {
    if (model.variables.length !== manifest.variables.length) {
      throw new PiflowError(
        `The manifest lists ${manifest.variables.length} variables but its architecture has ${model.variables.length}.`,
      );
    }
    manifest.variables.forEach((entry, i) => {
      const v = model.variables[i]!;
      if (entry.name !== model.variableNames[i] || entry.shape.join(',') !== v.shape.join(',')) {
        throw new PiflowError(
          `Variable ${i} is "${entry.name}" [${entry.shape}] in the manifest but "${model.variableNames[i]}" [${v.shape}] in the architecture.`,
        );
      }
    });
    const bytes = weights instanceof Uint8Array ? weights : new Uint8Array(weights);
    const expected = manifest.variables.reduce((a, v) => a + v.shape.reduce((p, d) => p * d, 1), 0) * 4;
    if (bytes.byteLength !== expected) {
      throw new PiflowError(`The weights hold ${bytes.byteLength} bytes; the manifest needs ${expected}.`);
    }
    const floats = new Float32Array(bytes.slice().buffer);
    let offset = 0;
    const arrays = manifest.variables.map((entry) => {
      const n = entry.shape.reduce((p, d) => p * d, 1);
      const a = floats.subarray(offset, offset + n);
      offset += n;
      return a;
    });
    setWeights(model.variables, arrays);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Writes `model.json` and `weights.bin` into `dir` (each via a temp file and rename). Node only. */
export async function saveModelDirectory(
  dir: string,
  model: StoredModel,
  extras: Parameters<typeof describeModel>[1],
): Promise<ModelManifest> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  await fs.mkdir(dir, { recursive: true });
  const manifest = describeModel(model, extras);
  const write = async (name: string, data: string | Uint8Array) => {
    const target = path.join(dir, name);
    const temp = `${target}.tmp-${process.pid}`;
    await fs.writeFile(temp, data);
    await fs.rename(temp, target);
  };
  await write('weights.bin', encodeWeights(model.variables));
  await write('model.json', `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Reads a model directory written by {@link saveModelDirectory}. Node only. */
export async function loadModelDirectory(
  dir: string,
): Promise<{ model: StoredModel; manifest: ModelManifest }> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  let manifest: ModelManifest;
  try {
    manifest = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8'));
  } catch (error) {
    throw new PiflowError(`Cannot read ${path.join(dir, 'model.json')}: ${(error as Error).message}`);
  }
  const weights = await fs.readFile(path.join(dir, 'weights.bin'));
  return { model: loadModel(manifest, new Uint8Array(weights)), manifest };
}

/** Fetches `model.json` and `weights.bin` from a base URL (browser or Node 20 fetch). */
export async function loadModelFromUrl(
  baseUrl: string,
  fetchImpl: typeof fetch = fetch,
): Promise<{ model: StoredModel; manifest: ModelManifest }> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const get = async (name: string) => {
    const response = await fetchImpl(`${base}${name}`);
    if (!response.ok)
      throw new PiflowError(`GET ${base}${name} answered ${response.status} ${response.statusText}.`);
    return response;
  };
  const manifest = (await (await get('model.json')).json()) as ModelManifest;
  const weights = await (await get('weights.bin')).arrayBuffer();
  return { model: loadModel(manifest, weights), manifest };
}
