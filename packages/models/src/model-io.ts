import {
  describeValue,
  InvalidArgumentError,
  PiflowError,
  POLICY_SPECIFICATION_VERSION,
  type PolicyFamily,
  type PolicyRegistry,
  UnknownPolicyFamilyError,
  writeFileAtomic,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  type Backbone,
  createMLPBackbone,
  createUNetBackbone,
  type MLPBackboneOptions,
  type UNetBackboneOptions,
} from './backbone';
import { createFlowModel, type FlowModel, isFlowModel } from './flow-model';
import { createStudent, type PolicyStudent } from './policy-heads';
import { decodeSafetensors, encodeSafetensors } from './safetensors';
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
  /**
   * Where the weights are: a safetensors file (written now; tensors named as `variables`), or one raw
   * little-endian float32 buffer in variable order (version 1 folders' `weights.bin`).
   */
  weights?: { format: 'safetensors' | 'float32'; file: string };
}

/**
 * `model.json` as written (version 2): the shape of a tfjs model JSON, so tfjs's IO handlers (`tf.io.http`,
 * `indexeddb://`, `localstorage://`, browser files) carry it: the manifest is the `modelTopology`, and the
 * weights manifest lists `model.safetensors` with its header as a first int32 "weight" (the header length
 * is padded to a multiple of 8), so a handler that reads the listed file gets the safetensors bytes whole.
 */
export interface ModelFileJSON {
  format: 'piflow-model';
  generatedBy: string;
  modelTopology: ModelManifest;
  weightsManifest: {
    paths: string[];
    weights: { name: string; shape: number[]; dtype: 'float32' | 'int32' }[];
  }[];
}

/** The weights file of folders written now. */
export const SAFETENSORS_FILE = 'model.safetensors';
const HEADER_WEIGHT = '__safetensors_header__';

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
export function upgradeManifest(input: ModelManifest | ManifestV1 | ModelFileJSON): ModelManifest {
  if (!input || input.format !== 'piflow-model') {
    throw new InvalidArgumentError('manifest.format', "'piflow-model'", describeValue(input?.format));
  }
  const wrapped = 'modelTopology' in input && input.modelTopology ? input.modelTopology : undefined;
  const manifest = (wrapped ? { ...wrapped, format: 'piflow-model' } : input) as ModelManifest | ManifestV1;
  if (manifest.version === 2) {
    // a file (wrapped form) says where its weights are; an in-memory manifest leaves it to the bytes
    return wrapped && !manifest.weights
      ? { ...manifest, weights: { format: 'safetensors', file: SAFETENSORS_FILE } }
      : manifest;
  }
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
    weights: { format: 'float32', file: 'weights.bin' },
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

/** A safetensors file starts with its header length (little-endian u64, within the file) and then '{'. */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 10) return false;
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return length + 8n <= BigInt(bytes.byteLength) && bytes[8] === 0x7b;
}

/** Splits one raw float32 buffer (version 1 `weights.bin`) into the manifest's variables, in order. */
function rawWeights(manifest: ModelManifest, bytes: Uint8Array): Float32Array[] {
  const expected = manifest.variables.reduce((a, v) => a + v.shape.reduce((p, d) => p * d, 1), 0) * 4;
  if (bytes.byteLength !== expected) {
    throw new PiflowError(`The weights hold ${bytes.byteLength} bytes; the manifest needs ${expected}.`);
  }
  const floats = new Float32Array(bytes.slice().buffer);
  let offset = 0;
  return manifest.variables.map((entry) => {
    const n = entry.shape.reduce((p, d) => p * d, 1);
    const a = floats.subarray(offset, offset + n);
    offset += n;
    return a;
  });
}

/** The manifest's variables from a safetensors file, by name (in any order; written by piflow or PyTorch). */
function safetensorsWeights(manifest: ModelManifest, bytes: Uint8Array): Float32Array[] {
  const byName = new Map(decodeSafetensors(bytes).tensors.map((t) => [t.name, t]));
  const arrays = manifest.variables.map((entry) => {
    const tensor = byName.get(entry.name);
    if (!tensor) throw new PiflowError(`The safetensors weights have no tensor "${entry.name}".`);
    if (tensor.shape.join(',') !== entry.shape.join(',')) {
      throw new PiflowError(
        `Tensor "${entry.name}" is [${tensor.shape}] in the safetensors weights but [${entry.shape}] in the manifest.`,
      );
    }
    byName.delete(entry.name);
    return tensor.data;
  });
  if (byName.size) {
    throw new PiflowError(
      `The safetensors weights hold tensors the model does not have: ${[...byName.keys()].join(', ')}.`,
    );
  }
  return arrays;
}

/** The model's weights as a safetensors file, tensors named by the model's variable names. */
export function encodeModelWeights(model: StoredModel): Uint8Array {
  const arrays = getWeights(model.variables);
  return encodeSafetensors(
    arrays.map((data, i) => ({ name: model.variableNames[i]!, shape: [...model.variables[i]!.shape], data })),
    { format: 'piflow-model' },
  );
}

/** `model.json` for a manifest and its safetensors weights (see {@link ModelFileJSON}). */
export function modelFileJSON(manifest: ModelManifest, safetensors: Uint8Array): ModelFileJSON {
  const { format: _format, weights: _weights, ...topology } = manifest;
  const headerBytes = decodeSafetensors(safetensors).dataOffset;
  return {
    format: 'piflow-model',
    generatedBy: '@piflow/models',
    modelTopology: { ...topology, format: 'piflow-model' } as ModelManifest,
    weightsManifest: [
      {
        paths: [SAFETENSORS_FILE],
        weights: [
          { name: HEADER_WEIGHT, shape: [headerBytes / 4], dtype: 'int32' },
          ...manifest.variables.map((v) => ({
            name: v.name,
            shape: [...v.shape],
            dtype: 'float32' as const,
          })),
        ],
      },
    ],
  };
}

/** The model as tfjs model artifacts (for any `tf.io.IOHandler`'s `save`): manifest and safetensors bytes. */
export function modelArtifacts(
  model: StoredModel,
  extras: Parameters<typeof describeModel>[1],
): tf.io.ModelArtifacts {
  const weights = encodeModelWeights(model);
  const file = modelFileJSON(describeModel(model, extras), weights);
  return {
    format: file.format,
    generatedBy: file.generatedBy,
    modelTopology: file.modelTopology as unknown as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: file.weightsManifest[0]!.weights,
    weightData: weights.slice().buffer,
  };
}

/** Builds a model from tfjs model artifacts written by {@link modelArtifacts} (any `tf.io.IOHandler`'s `load`). */
export function modelFromArtifacts(
  artifacts: tf.io.ModelArtifacts,
  options: LoadModelOptions = {},
): { model: StoredModel; manifest: ModelManifest } {
  if (!artifacts || artifacts.format !== 'piflow-model' || !artifacts.modelTopology) {
    throw new InvalidArgumentError(
      'artifacts',
      'piflow model artifacts (format "piflow-model" with a modelTopology)',
      describeValue(artifacts?.format),
    );
  }
  const data = artifacts.weightData;
  if (!data) throw new InvalidArgumentError('artifacts.weightData', 'the safetensors bytes', 'undefined');
  const bytes = new Uint8Array(Array.isArray(data) ? concatBuffers(data) : data);
  const manifest = upgradeManifest({
    ...(artifacts.modelTopology as unknown as ModelManifest),
    format: 'piflow-model',
  });
  return {
    model: loadModel(
      { ...manifest, weights: { format: 'safetensors', file: SAFETENSORS_FILE } },
      bytes,
      options,
    ),
    manifest,
  };
}

function concatBuffers(buffers: ArrayBuffer[]): ArrayBuffer {
  const out = new Uint8Array(buffers.reduce((a, b) => a + b.byteLength, 0));
  let at = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  return out.buffer;
}

/**
 * Saves a model through a tfjs IO handler or URL scheme, the way tfjs users save models:
 * `saveModel(student, 'indexeddb://my-student', { sampleShape })`, `'localstorage://…'`, `'downloads://…'`,
 * or any `tf.io.IOHandler`. (A folder on disk in Node: {@link saveModelDirectory}.)
 */
export async function saveModel(
  model: StoredModel,
  destination: string | tf.io.IOHandler,
  extras: Parameters<typeof describeModel>[1],
): Promise<tf.io.SaveResult> {
  const handler = typeof destination === 'string' ? tf.io.getSaveHandlers(destination)[0] : destination;
  if (!handler?.save) {
    throw new InvalidArgumentError(
      'destination',
      "a tf.io.IOHandler with save, or a URL tfjs can save to ('indexeddb://…', 'localstorage://…', 'downloads://…')",
      describeValue(destination),
    );
  }
  return handler.save(modelArtifacts(model, extras));
}

/**
 * Loads a model through a tfjs IO handler or URL, the way tfjs users load models: `'indexeddb://…'`,
 * `'localstorage://…'`, `'https://…/model.json'` (`tf.io.http`), `tf.io.browserFiles([...])` or any
 * `tf.io.IOHandler`. Students are built through `options.families`.
 */
export async function loadModelFrom(
  source: string | tf.io.IOHandler,
  options: LoadModelOptions = {},
): Promise<{ model: StoredModel; manifest: ModelManifest }> {
  const handler = typeof source === 'string' ? tf.io.getLoadHandlers(source)[0] : source;
  if (!handler?.load) {
    throw new InvalidArgumentError(
      'source',
      "a tf.io.IOHandler with load, or a URL tfjs can load from ('indexeddb://…', 'localstorage://…', 'https://…/model.json')",
      describeValue(source),
    );
  }
  return modelFromArtifacts(await handler.load(), options);
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
    const format = manifest.weights?.format ?? (looksLikeSafetensors(bytes) ? 'safetensors' : 'float32');
    const arrays = format === 'float32' ? rawWeights(manifest, bytes) : safetensorsWeights(manifest, bytes);
    arrays.forEach((a, i) => {
      const at = a.findIndex((v) => !Number.isFinite(v));
      if (at >= 0) {
        throw new PiflowError(
          `The weights hold a non-finite value (${a[at]}) in "${manifest.variables[i]!.name}" at index ${at}: the model diverged or the file is damaged.`,
        );
      }
    });
    setWeights(model.variables, arrays);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * Writes `model.json` (architecture, family, sampling settings) and `model.safetensors` (the weights, named by
 * variable) into `dir`, each written atomically (`writeFileAtomic`). Node only.
 */
export async function saveModelDirectory(
  dir: string,
  model: StoredModel,
  extras: Parameters<typeof describeModel>[1],
): Promise<ModelManifest> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  await fs.mkdir(dir, { recursive: true });
  const manifest = describeModel(model, extras);
  const write = (name: string, data: string | Uint8Array) => writeFileAtomic(path.join(dir, name), data);
  const weights = encodeModelWeights(model);
  await write(SAFETENSORS_FILE, weights);
  await write('model.json', `${JSON.stringify(modelFileJSON(manifest, weights), null, 2)}\n`);
  return { ...manifest, weights: { format: 'safetensors', file: SAFETENSORS_FILE } };
}

/** Reads a model directory written by {@link saveModelDirectory} (or a version 1 folder with `weights.bin`). Node only. */
export async function loadModelDirectory(
  dir: string,
  options: LoadModelOptions = {},
): Promise<{ model: StoredModel; manifest: ModelManifest }> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  let manifest: ModelManifest;
  try {
    manifest = upgradeManifest(JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8')));
  } catch (error) {
    throw new PiflowError(`Cannot read ${path.join(dir, 'model.json')}: ${(error as Error).message}`);
  }
  const file = path.join(dir, manifest.weights?.file ?? 'weights.bin');
  const weights = await fs.readFile(file);
  try {
    return { model: loadModel(manifest, new Uint8Array(weights), options), manifest };
  } catch (error) {
    if (error instanceof PiflowError && !(error as Error).message.startsWith(file)) {
      (error as Error).message = `${file}: ${(error as Error).message}`;
    }
    throw error;
  }
}

/** Fetches `model.json` and its weights file from a base URL (browser or Node 20 fetch). */
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
  const weights = await (await get(manifest.weights?.file ?? 'weights.bin')).arrayBuffer();
  return { model: loadModel(manifest, weights, options), manifest };
}
