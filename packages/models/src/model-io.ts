import {
  describeValue,
  InvalidArgumentError,
  PiflowError,
  POLICY_SPECIFICATION_VERSION,
  type PolicyFamily,
  type PolicyRegistry,
  UnknownPolicyFamilyError,
} from '@piflow/core';
import type * as tf from '@tensorflow/tfjs-core';
import {
  type Backbone,
  createMLPBackbone,
  createUNetBackbone,
  type MLPBackboneOptions,
  type UNetBackboneOptions,
} from './backbone';
import { createFlowModel, type FlowModel, isFlowModel } from './flow-model';
import { createStudent, type PolicyStudent } from './policy-heads';
import { getWeights, setWeights } from './weights';

/** The policy family a student's model file names, so a loader can find it (or say what to install). */
export interface ManifestFamily {
  name: string;
  /** The plugin specification version the family implemented when the file was written. */
  specificationVersion: string;
  /** The npm package that provides it. */
  package?: string;
}

/**
 * How a trained model is described on disk or over HTTP: `model.json` beside a float32 `weights.bin`.
 * Version 2 (written now): students are `kind: 'student'` and name their `family`; version 1 files
 * (`'gm-student'`, `'dx-student'`) are still read.
 */
export interface ModelManifest {
  format: 'piflow-model';
  version: 2;
  kind: 'flow-model' | 'student';
  backbone: { kind: 'mlp' | 'unet'; config: MLPBackboneOptions | UNetBackboneOptions };
  /** Students: the policy family (name, specification version, npm package). */
  family?: ManifestFamily;
  /** Students: the family's head options (e.g. GM { numComponents, logstdHiddenDim }, DX { numPoints, mode }). */
  head?: Record<string, number | string>;
  /** Students: the options the family's `create` gets with the student's parameters (e.g. DX shift). */
  policyOptions?: Record<string, unknown>;
  /** Shape of one sample, without the batch axis (e.g. [2] or [28, 28, 1]). */
  sampleShape: number[];
  /** Variables in order, with their stable names and shapes. */
  variables: { name: string; shape: number[] }[];
  /**
   * How to sample it: shift, steps the student was trained for, final step scale, guidance, and the family's
   * sampling options (e.g. GM `{ temperature: 'auto' }`).
   */
  sampling?: {
    shift?: number;
    numInferenceSteps?: number;
    finalStepSizeScale?: number;
    guidanceScale?: number;
    familyOptions?: Record<string, number | string>;
  };
  /** Free-form: the command that produced it, training steps, metrics. */
  metadata?: Record<string, unknown>;
}

/** A version 1 manifest (before students named their family); read by {@link upgradeManifest}. */
interface ManifestV1
  extends Omit<ModelManifest, 'version' | 'kind' | 'family' | 'policyOptions' | 'sampling'> {
  version: 1;
  kind: 'flow-model' | 'gm-student' | 'dx-student';
  sampling?: Omit<NonNullable<ModelManifest['sampling']>, 'familyOptions'> & { temperature?: number };
}

export type StoredModel = FlowModel | PolicyStudent;

/** Where model loading finds policy families: a registry, or a list of family values. */
export type FamilySource = PolicyRegistry | readonly PolicyFamily[];

export interface LoadModelOptions {
  /** The families a student file may name (e.g. `createPolicyRegistry({ gm, dx, myFamily })`). */
  families?: FamilySource;
}

function isStudent(model: StoredModel): model is PolicyStudent {
  return !isFlowModel(model);
}

/** Describes a flow model or student for storage (its weights are not included; see {@link encodeWeights}). */
export function describeModel(
  model: StoredModel,
  extras: Pick<ModelManifest, 'sampleShape'> & Partial<Pick<ModelManifest, 'sampling' | 'metadata'>>,
): ModelManifest {
  const backbone = model.backbone;
  const student = isStudent(model)
    ? {
        family: {
          name: model.family,
          specificationVersion: POLICY_SPECIFICATION_VERSION,
          ...(model.familyPackage ? { package: model.familyPackage } : {}),
        },
        head: { ...model.headOptions },
        ...(Object.keys(model.policyOptions).length ? { policyOptions: { ...model.policyOptions } } : {}),
      }
    : {};
  return {
    format: 'piflow-model',
    version: 2,
    kind: isStudent(model) ? 'student' : 'flow-model',
    backbone: {
      kind: backbone.kind,
      config: { ...backbone.config } as MLPBackboneOptions | UNetBackboneOptions,
    },
    ...student,
    sampleShape: [...extras.sampleShape],
    variables: model.variables.map((v, i) => ({ name: model.variableNames[i]!, shape: [...v.shape] })),
    ...(extras.sampling ? { sampling: extras.sampling } : {}),
    ...(extras.metadata ? { metadata: extras.metadata } : {}),
  };
}

/**
 * A manifest in the current version: version 1 GM/DX students become `kind: 'student'` with their family
 * named (their head options split from the DX policy options; a stored GM temperature becomes the family's
 * sampling option).
 */
export function upgradeManifest(manifest: ModelManifest | ManifestV1): ModelManifest {
  if (!manifest || manifest.format !== 'piflow-model') {
    throw new InvalidArgumentError('manifest.format', "'piflow-model'", describeValue(manifest?.format));
  }
  if (manifest.version === 2) return manifest;
  if (manifest.version !== 1) {
    throw new InvalidArgumentError(
      'manifest.version',
      '1 or 2',
      describeValue((manifest as { version: unknown }).version),
    );
  }
  const { temperature, ...sampling } = manifest.sampling ?? {};
  const upgraded: ModelManifest = {
    ...manifest,
    version: 2,
    kind: manifest.kind === 'flow-model' ? 'flow-model' : 'student',
    ...(manifest.sampling
      ? {
          sampling: { ...sampling, ...(temperature !== undefined ? { familyOptions: { temperature } } : {}) },
        }
      : {}),
  };
  const head = manifest.head ?? {};
  if (manifest.kind === 'gm-student') {
    upgraded.family = { name: 'gm', specificationVersion: 'v1', package: '@piflow/policy-gm' };
  } else if (manifest.kind === 'dx-student') {
    const { shift = 1, segmentSize = 1, ...rest } = head;
    upgraded.family = { name: 'dx', specificationVersion: 'v1', package: '@piflow/policy-dx' };
    upgraded.head = rest;
    upgraded.policyOptions = { shift, segmentSize, mode: rest.mode ?? 'grid' };
  }
  return upgraded;
}

function findFamily(manifest: ModelManifest, families: FamilySource | undefined): PolicyFamily {
  const named = manifest.family;
  if (!named || typeof named.name !== 'string') {
    throw new InvalidArgumentError(
      'manifest.family',
      'the policy family of a student { name, specificationVersion, package }',
      describeValue(named),
    );
  }
  const list = families === undefined ? [] : Array.isArray(families) ? families : null;
  const registry = list ? null : (families as PolicyRegistry);
  const family = list
    ? list.find((f) => f.name === named.name)
    : registry!.has(named.name)
      ? registry!.get(named.name)
      : undefined;
  if (!family) {
    const known = list ? list.map((f) => f.name) : registry!.names();
    const pkg = named.package;
    throw new UnknownPolicyFamilyError(
      `This model is a student of the policy family "${named.name}"${pkg ? ` from the npm package "${pkg}"` : ''}, which is not registered here (known: ${known.length ? known.map((k) => `"${k}"`).join(', ') : 'none'}). ` +
        (pkg
          ? `Install it (npm i ${pkg}) and pass its family: loadModel(manifest, weights, { families: [...families, ${named.name}] }); with the piflow command: --plugin ${pkg}.`
          : 'Pass the family value that made it in options.families.'),
    );
  }
  return family;
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

/**
 * Builds the architecture a manifest describes (fresh weights). A student's head comes from its family, found
 * by the name the file records in `options.families`; an unknown family throws naming the package to install.
 */
export function buildModel(manifestIn: ModelManifest, options: LoadModelOptions = {}): StoredModel {
  const manifest = upgradeManifest(manifestIn);
  if (manifest.kind === 'flow-model') return createFlowModel(buildBackbone(manifest));
  if (manifest.kind !== 'student') {
    throw new InvalidArgumentError(
      'manifest.kind',
      "'flow-model' or 'student'",
      describeValue(manifest.kind),
    );
  }
  const family = findFamily(manifest, options.families);
  const backbone = buildBackbone(manifest);
  try {
    return createStudent(backbone, {
      family,
      head: manifest.head ?? {},
      ...(manifest.policyOptions ? { policyOptions: manifest.policyOptions } : {}),
    });
  } catch (error) {
    backbone.dispose();
    throw error;
  }
}

/** Builds the model and loads its weights, checking every variable's name and shape against the manifest. */
export function loadModel(
  manifestIn: ModelManifest,
  weights: ArrayBuffer | Uint8Array,
  options: LoadModelOptions = {},
): StoredModel {
  const manifest = upgradeManifest(manifestIn);
  const model = buildModel(manifest, options);
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
  options: LoadModelOptions = {},
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
  const upgraded = upgradeManifest(manifest);
  return { model: loadModel(upgraded, new Uint8Array(weights), options), manifest: upgraded };
}

/** Fetches `model.json` and `weights.bin` from a base URL (browser or Node 20 fetch). */
export async function loadModelFromUrl(
  baseUrl: string,
  options: LoadModelOptions & { fetch?: typeof fetch } = {},
): Promise<{ model: StoredModel; manifest: ModelManifest }> {
  const fetchImpl = options.fetch ?? fetch;
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const get = async (name: string) => {
    const response = await fetchImpl(`${base}${name}`);
    if (!response.ok)
      throw new PiflowError(`GET ${base}${name} answered ${response.status} ${response.statusText}.`);
    return response;
  };
  const manifest = upgradeManifest((await (await get('model.json')).json()) as ModelManifest);
  const weights = await (await get('weights.bin')).arrayBuffer();
  return { model: loadModel(manifest, weights, options), manifest };
}
