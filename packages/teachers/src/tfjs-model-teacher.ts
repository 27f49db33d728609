import {
  assertNumber,
  assertOneOf,
  assertSigma,
  type Condition,
  describeValue,
  InvalidArgumentError,
  PiflowError,
  type PredictionType,
  predictionToVelocity,
  predictionTypes,
  type Sigma,
  SyncUnavailableError,
  sigmaValues,
  type TeacherMetadata,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { fileSystemIO } from './node-file-system-io';
import { assertTeacherCall, type LocalTeacher } from './teacher-inputs';

/** The part of a tfjs `LayersModel` this adapter uses. */
export interface LayersModelLike {
  readonly inputNames: string[];
  readonly inputs: ReadonlyArray<{ readonly shape: ReadonlyArray<number | null> }>;
  predict(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[];
  dispose(): unknown;
}

/** The part of a tfjs-converter `GraphModel` this adapter uses. */
export interface GraphModelLike {
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly shape?: number[] }>;
  execute(inputs: tf.NamedTensorMap, outputs?: string | string[]): tf.Tensor | tf.Tensor[];
  executeAsync(inputs: tf.NamedTensorMap, outputs?: string | string[]): Promise<tf.Tensor | tf.Tensor[]>;
  dispose(): void;
}

export type TfjsModel = LayersModelLike | GraphModelLike;

/** Which model input receives what. Names are the model's input names. */
export interface TfjsModelInputs {
  /** Input receiving x (default: the model's first input). */
  x?: string;
  /** Input receiving the timestep σ·timestepScale (default: the second input). */
  timestep?: string;
  /**
   * Conditioning inputs: condition name → model input name (default: every remaining model input, under
   * its own name).
   */
  condition?: Readonly<Record<string, string>>;
}

/** What a tfjs model takes and returns; also the JSON format of `teacher.json` beside a model.json. */
export interface TfjsModelDescription {
  /** What the model predicts: 'velocity' (u = ε − x0, default), 'x0' or 'epsilon'. Converted to u. */
  predictionType?: PredictionType;
  /** The model receives σ·timestepScale as its timestep (1: σ ∈ [0, 1]; 1000: σ·1000). Default 1. */
  timestepScale?: number;
  inputs?: TfjsModelInputs;
  /** Per-sample shape of x (default: read from the model's x input when fully known). */
  sampleShape?: number[];
  layout?: TeacherMetadata['layout'];
  /** Time-warp shift to sample the teacher with (metadata, default 1). */
  shift?: number;
  description?: string;
}

export interface TfjsModelTeacherOptions extends TfjsModelDescription {
  model: TfjsModel;
}

export interface TfjsModelTeacher extends LocalTeacher {
  readonly model: TfjsModel;
  readonly predictionType: PredictionType;
  readonly timestepScale: number;
  /** Disposes the model's weights. */
  dispose(): void;
}

function isLayersModel(model: unknown): model is LayersModelLike {
  return typeof model === 'object' && model !== null && Array.isArray((model as LayersModelLike).inputNames);
}
function isGraphModel(model: unknown): model is GraphModelLike {
  return (
    typeof model === 'object' &&
    model !== null &&
    typeof (model as GraphModelLike).execute === 'function' &&
    Array.isArray((model as GraphModelLike).inputs)
  );
}

/**
 * A tfjs `LayersModel` or `GraphModel` as a teacher. The model is fed x, the timestep σ·timestepScale
 * ([B] or [B, 1], following the model's input shape) and the named conditioning inputs; its single output
 * (same shape as x) is converted from the declared prediction type to the velocity u. x0-predicting models
 * need σ > 0 and ε-predicting ones σ < 1 (the conversions divide by σ and 1 − σ).
 */
export function createTfjsModelTeacher(options: TfjsModelTeacherOptions): TfjsModelTeacher {
  const {
    model,
    predictionType = 'velocity',
    timestepScale = 1,
  } = options ?? ({} as TfjsModelTeacherOptions);
  const layers = isLayersModel(model);
  if (!layers && !isGraphModel(model)) {
    throw new InvalidArgumentError(
      'model',
      'a tfjs LayersModel (tf.loadLayersModel) or GraphModel (loadGraphModel)',
      describeValue(model),
    );
  }
  assertOneOf('predictionType', predictionType, predictionTypes);
  assertNumber('timestepScale', timestepScale, { min: 0, minExclusive: true });

  const inputNames: string[] = layers
    ? [...model.inputNames]
    : (model as GraphModelLike).inputs.map((i) => i.name);
  const inputShapes: (ReadonlyArray<number | null> | undefined)[] = layers
    ? model.inputs.map((i) => i.shape)
    : (model as GraphModelLike).inputs.map((i) => i.shape);
  const known = new Set(inputNames);
  const declared = options.inputs ?? {};
  const xName = declared.x ?? inputNames[0];
  const timestepName = declared.timestep ?? inputNames[1];
  for (const [argument, name] of [
    ['inputs.x', xName],
    ['inputs.timestep', timestepName],
  ] as const) {
    if (name === undefined || !known.has(name)) {
      throw new InvalidArgumentError(
        argument,
        `one of the model's inputs (${inputNames.map((n) => JSON.stringify(n)).join(', ')})`,
        describeValue(name),
      );
    }
  }
  const conditionInputs: Record<string, string> = declared.condition
    ? { ...declared.condition }
    : Object.fromEntries(inputNames.filter((n) => n !== xName && n !== timestepName).map((n) => [n, n]));
  for (const [name, input] of Object.entries(conditionInputs)) {
    if (!known.has(input)) {
      throw new InvalidArgumentError(
        `inputs.condition.${name}`,
        `one of the model's inputs (${inputNames.map((n) => JSON.stringify(n)).join(', ')})`,
        describeValue(input),
      );
    }
  }
  const fed = new Set([xName, timestepName, ...Object.values(conditionInputs)]);
  const unfed = inputNames.filter((n) => !fed.has(n));
  if (unfed.length > 0) {
    throw new InvalidArgumentError(
      'inputs',
      'a source for every model input',
      `no source for ${unfed.map((n) => JSON.stringify(n)).join(', ')}`,
    );
  }
  const timestepShape = inputShapes[inputNames.indexOf(timestepName!)];
  const timestepAsColumn = timestepShape !== undefined && timestepShape.length === 2;
  const xShape = inputShapes[inputNames.indexOf(xName!)];
  const inferredSample =
    xShape && xShape.length >= 2 && xShape.slice(1).every((d) => typeof d === 'number' && d > 0)
      ? (xShape.slice(1) as number[])
      : undefined;
  const sampleShape = options.sampleShape ?? inferredSample;
  const rank = sampleShape ? sampleShape.length + 1 : xShape?.length;
  const layout =
    options.layout ?? (rank === 2 ? 'vector' : rank === 3 ? 'tokens' : rank === 4 ? 'image' : undefined);
  const metadata: TeacherMetadata = {
    ...(sampleShape ? { sampleShape } : {}),
    ...(layout ? { layout } : {}),
    shift: options.shift ?? 1,
    guidance: 'none',
    conditionNames: Object.keys(conditionInputs),
    description:
      options.description ??
      `tfjs ${layers ? 'LayersModel' : 'GraphModel'} (${predictionType} prediction, timestep σ·${timestepScale})`,
  };

  const checkCall = (x: tf.Tensor, sigma: Sigma, condition: Condition | undefined) => {
    assertTeacherCall(x, sigma, condition, metadata);
    const batch = x.shape[0]!;
    if (predictionType === 'x0') assertSigma('sigma', sigma, batch, { allowZero: false });
    if (predictionType === 'epsilon') {
      const values = sigmaValues(sigma, batch);
      values.forEach((s, i) => {
        if (s >= 1) {
          throw new InvalidArgumentError(
            typeof sigma === 'number' ? 'sigma' : `sigma[${i}]`,
            'σ < 1 (an ε-predicting model has no velocity at σ = 1)',
            String(s),
          );
        }
      });
    }
  };

  const feed = (x: tf.Tensor, sigma: Sigma, condition: Condition | undefined): tf.NamedTensorMap => {
    const batch = x.shape[0]!;
    const t = tf.mul(tf.tensor1d(sigmaValues(sigma, batch)), timestepScale);
    const map: tf.NamedTensorMap = {
      [xName!]: x,
      [timestepName!]: timestepAsColumn ? tf.reshape(t, [batch, 1]) : t,
    };
    for (const [name, input] of Object.entries(conditionInputs)) map[input] = condition![name]!;
    return map;
  };

  const convert = (output: tf.Tensor | tf.Tensor[], x: tf.Tensor, sigma: Sigma): tf.Tensor => {
    if (Array.isArray(output)) {
      throw new PiflowError(
        `The tfjs model returned ${output.length} outputs; a teacher model must return one.`,
      );
    }
    if (output.shape.join() !== x.shape.join()) {
      throw new PiflowError(
        `The tfjs model returned shape [${output.shape.join(', ')}] for x of shape [${x.shape.join(', ')}]; ` +
          'its output must have the shape of x.',
      );
    }
    return predictionToVelocity(tf.cast(output, 'float32'), x, sigma, predictionType);
  };

  // A graph model with control flow or dynamic shapes runs only through executeAsync: tfjs refuses execute()
  // while compiling the graph, before running any op.
  const executeSync = (inputs: tf.NamedTensorMap): tf.Tensor | tf.Tensor[] => {
    try {
      return (model as GraphModelLike).execute(inputs);
    } catch (error) {
      if (error instanceof Error && error.message.includes('executeAsync')) {
        throw new SyncUnavailableError(
          `This graph model has dynamic ops and only runs asynchronously: ${error.message}`,
        );
      }
      throw error;
    }
  };

  const velocitySync = (x: tf.Tensor, sigma: Sigma, condition?: Condition): tf.Tensor => {
    checkCall(x, sigma, condition);
    return tf.tidy(() => {
      const inputs = feed(x, sigma, condition);
      return convert(
        layers ? model.predict(inputNames.map((n) => inputs[n]!)) : executeSync(inputs),
        x,
        sigma,
      );
    });
  };

  return {
    metadata,
    model,
    predictionType,
    timestepScale,
    velocitySync,
    async velocity(x, sigma, condition) {
      if (layers) return velocitySync(x, sigma, condition);
      checkCall(x, sigma, condition);
      // Graph models with control flow only run asynchronously.
      const inputs = tf.tidy(() => feed(x, sigma, condition));
      try {
        const output = await (model as GraphModelLike).executeAsync(inputs);
        try {
          return tf.tidy(() => convert(output, x, sigma));
        } finally {
          tf.dispose(output);
        }
      } finally {
        for (const [name, tensor] of Object.entries(inputs)) {
          if (name !== xName && !Object.values(conditionInputs).includes(name)) tensor.dispose();
        }
      }
    },
    dispose() {
      model.dispose();
    },
  };
}

export interface LoadTfjsModelTeacherOptions extends TfjsModelDescription {
  /**
   * Where the model is: an IOHandler (e.g. `fileSystemIO(dir)`), an http(s):// URL of model.json, a browser
   * storage URL (indexeddb://, localstorage://) or, in Node, a directory path or file:// URL.
   */
  source: string | tf.io.IOHandler;
  /** Options for tfjs' http handler (headers, fetch function, …). */
  requestInit?: RequestInit;
}

/** A directory, or the path of its model JSON file. */
function directoryHandler(location: string): tf.io.IOHandler {
  if (!location.endsWith('.json')) return fileSystemIO(location);
  const cut = Math.max(location.lastIndexOf('/'), location.lastIndexOf('\\'));
  return fileSystemIO(cut < 0 ? '.' : location.slice(0, cut) || '/', {
    modelFileName: location.slice(cut + 1),
  });
}

function isUrlWithScheme(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source);
}

/**
 * Loads a tfjs model (layers-model or graph-model format, from model.json + weight shards) and wraps it as
 * a teacher. Needs @tensorflow/tfjs-layers (layers models) or @tensorflow/tfjs-converter (graph models).
 */
export async function loadTfjsModelTeacher(options: LoadTfjsModelTeacherOptions): Promise<TfjsModelTeacher> {
  const { source, requestInit, ...description } = options ?? ({} as LoadTfjsModelTeacherOptions);
  let handler: tf.io.IOHandler;
  if (typeof source === 'string' && source.length > 0) {
    if (source.startsWith('file://'))
      handler = directoryHandler(decodeURIComponent(new URL(source).pathname));
    else if (/^https?:\/\//i.test(source)) handler = tf.io.http(source, { requestInit });
    else if (isUrlWithScheme(source)) {
      const handlers = tf.io.getLoadHandlers(source);
      if (handlers.length === 0) {
        throw new InvalidArgumentError('source', 'a URL scheme tfjs can load here', JSON.stringify(source));
      }
      handler = handlers[0]!;
    } else handler = directoryHandler(source);
  } else if (source && typeof source === 'object' && typeof source.load === 'function') handler = source;
  else {
    throw new InvalidArgumentError(
      'source',
      'a model URL, a directory path or a tfjs IOHandler with load()',
      describeValue(source),
    );
  }
  const artifacts = await handler.load!();
  const format = artifacts.format ?? 'layers-model';
  const memory = tf.io.fromMemory(artifacts);
  let model: TfjsModel;
  if (format === 'graph-model') {
    const converter = await importOptional(
      () => import('@tensorflow/tfjs-converter'),
      '@tensorflow/tfjs-converter',
      'graph models',
    );
    model = (await converter.loadGraphModel(memory)) as unknown as GraphModelLike;
  } else {
    const layersModule = await importOptional(
      () => import('@tensorflow/tfjs-layers'),
      '@tensorflow/tfjs-layers',
      'layers models',
    );
    model = (await layersModule.loadLayersModel(memory)) as unknown as LayersModelLike;
  }
  return createTfjsModelTeacher({ ...description, model });
}

async function importOptional<T>(load: () => Promise<T>, name: string, what: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new PiflowError(
      `Loading ${what} needs ${name}: install it (npm i ${name}@4.22.0). (${String(error)})`,
    );
  }
}
