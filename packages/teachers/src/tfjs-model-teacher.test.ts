import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type AnalyticGMFlowOptions,
  createAnalyticGMFlow,
  InvalidArgumentError,
  PiflowError,
  type PredictionType,
  SyncUnavailableError,
} from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSystemIO } from './node-file-system-io';
import { describeTeacherContract } from './testing';
import { createTfjsModelTeacher, loadTfjsModelTeacher } from './tfjs-model-teacher';

const spec: AnalyticGMFlowOptions = {
  means: [
    [-1, 0.5, 0],
    [1.5, -0.5, 1],
  ],
  std: 0.4,
  weights: [0.4, 0.6],
};
const flow = createAnalyticGMFlow(spec);
const C = 3;

interface AnalyticLayerConfig {
  predictionType: PredictionType;
  timestepScale: number;
  name?: string;
}

/**
 * A tfjs-layers layer computing the exact Gaussian-mixture flow's prediction of the given type from
 * [x, t = σ·timestepScale]: a real LayersModel whose x0 / ε outputs the teacher must convert back to u.
 */
class AnalyticPrediction extends tfl.layers.Layer {
  static className = 'PiflowTestAnalyticPrediction';
  readonly predictionType: PredictionType;
  readonly timestepScale: number;
  constructor(config: AnalyticLayerConfig) {
    super(config);
    this.predictionType = config.predictionType;
    this.timestepScale = config.timestepScale;
  }
  override computeOutputShape(inputShape: tfl.Shape[]): tfl.Shape {
    return inputShape[0]!;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const [x, t] = inputs as tf.Tensor[];
    return tf.tidy(() => {
      const sigma = tf.div(tf.reshape(t!, [-1]), this.timestepScale) as tf.Tensor1D;
      const u = flow.velocity(x!, sigma);
      const s = tf.reshape(sigma, [-1, 1]);
      if (this.predictionType === 'x0') return tf.sub(x!, tf.mul(s, u));
      if (this.predictionType === 'epsilon') return tf.add(x!, tf.mul(tf.sub(1, s), u));
      return u;
    });
  }
  override getConfig() {
    return { ...super.getConfig(), predictionType: this.predictionType, timestepScale: this.timestepScale };
  }
}
tf.serialization.registerClass(AnalyticPrediction);

function analyticModel(predictionType: PredictionType, timestepScale: number): tfl.LayersModel {
  const x = tfl.input({ shape: [C], name: 'x' });
  const t = tfl.input({ shape: [1], name: 't' });
  const out = new AnalyticPrediction({ predictionType, timestepScale }).apply([x, t]) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [x, t], outputs: out });
}

const analyticReference = ({ x, sigma }: { x: tf.Tensor; sigma: number[] }) =>
  flow.velocityFloat64(x.dataSync(), sigma);
const vectorInputs = (
  batch: number,
  random: { normalTensor(shape: number[]): tf.Tensor; uniform(): number },
) => ({
  x: random.normalTensor([batch, C]),
  sigma: Array.from({ length: batch }, () => 0.05 + 0.9 * random.uniform()),
});

// Prediction-type and timestep-scale conversions, checked against the exact analytic flow.
for (const [predictionType, timestepScale] of [
  ['velocity', 1],
  ['x0', 1000],
  ['epsilon', 1],
] as const) {
  describeTeacherContract(`tfjs LayersModel predicting ${predictionType} (timestep σ·${timestepScale})`, {
    metadata: {
      layout: 'vector',
      sampleShape: [C],
      shift: 1,
      guidance: 'none',
      conditionNames: [],
      description: `tfjs LayersModel (${predictionType} prediction, timestep σ·${timestepScale})`,
    },
    create: () =>
      createTfjsModelTeacher({
        model: analyticModel(predictionType, timestepScale),
        predictionType,
        timestepScale,
      }),
    makeInputs: vectorInputs,
    reference: analyticReference,
    // x0 → u divides by σ ≥ 0.05: float32 rounding of x0 is amplified up to 20×
    tolerance: predictionType === 'velocity' ? 2e-5 : 2e-4,
  });
}

/** A small conditional MLP: [x, t, label one-hot] → u. */
function conditionalModel(seed: number): tfl.LayersModel {
  const x = tfl.input({ shape: [C], name: 'x' });
  const t = tfl.input({ shape: [1], name: 'timestep' });
  const label = tfl.input({ shape: [4], name: 'label' });
  const h = tfl.layers
    .dense({ units: 32, activation: 'tanh', kernelInitializer: tfl.initializers.glorotNormal({ seed }) })
    .apply(tfl.layers.concatenate().apply([x, t, label])) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: C, kernelInitializer: tfl.initializers.glorotNormal({ seed: seed + 1 }) })
    .apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [x, t, label], outputs: out });
}

const conditionalInputs = (
  batch: number,
  random: { normalTensor(shape: number[]): tf.Tensor; uniform(): number; integer(n: number): number },
) => ({
  ...vectorInputs(batch, random),
  condition: {
    labels: tf.cast(
      tf.oneHot(
        Array.from({ length: batch }, () => random.integer(4)),
        4,
      ),
      'float32',
    ),
  },
});

let directory: string;
let reference: tfl.LayersModel;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  await useBackend('cpu');
  directory = await mkdtemp(path.join(tmpdir(), 'piflow-tfjs-teacher-'));
  reference = conditionalModel(7);
  // small shards: loading must reassemble several files
  await reference.save(fileSystemIO(path.join(directory, 'conditional'), { shardSizeBytes: 256 }));
  await analyticModel('x0', 1000).save(fileSystemIO(path.join(directory, 'analytic')));
  server = createServer(async (request, response) => {
    try {
      const file = path.join(
        directory,
        'conditional',
        path.basename(new URL(request.url!, 'http://x').pathname),
      );
      response.writeHead(200).end(await readFile(file));
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  reference?.dispose();
  await new Promise((resolve) => server?.close(resolve));
  if (directory) await rm(directory, { recursive: true, force: true });
});

const conditionalReference = ({
  x,
  sigma,
  condition,
}: {
  x: tf.Tensor;
  sigma: number[];
  condition?: Record<string, tf.Tensor>;
}) =>
  tf.tidy(() =>
    (
      reference.predict([x, tf.tensor2d(sigma, [sigma.length, 1]), condition!.labels!]) as tf.Tensor
    ).dataSync(),
  );

describeTeacherContract('tfjs LayersModel saved with fileSystemIO and loaded from a directory', {
  metadata: {
    layout: 'vector',
    sampleShape: [C],
    shift: 1,
    guidance: 'none',
    conditionNames: ['labels'],
    description: 'tfjs LayersModel (velocity prediction, timestep σ·1)',
  },
  backends: ['cpu'],
  create: () =>
    loadTfjsModelTeacher({
      source: path.join(directory, 'conditional'),
      inputs: { condition: { labels: 'label' } },
    }),
  makeInputs: conditionalInputs,
  reference: conditionalReference,
  tolerance: 1e-6,
});

describeTeacherContract('tfjs LayersModel loaded over http', {
  metadata: {
    layout: 'vector',
    sampleShape: [C],
    shift: 1,
    guidance: 'none',
    conditionNames: ['labels'],
    description: 'tfjs LayersModel (velocity prediction, timestep σ·1)',
  },
  backends: ['cpu'],
  create: () =>
    loadTfjsModelTeacher({ source: `${baseUrl}/model.json`, inputs: { condition: { labels: 'label' } } }),
  makeInputs: conditionalInputs,
  reference: conditionalReference,
  tolerance: 1e-6,
});

describeTeacherContract('tfjs LayersModel with a custom layer loaded from a file:// URL', {
  metadata: {
    layout: 'vector',
    sampleShape: [C],
    shift: 1,
    guidance: 'none',
    conditionNames: [],
    description: 'tfjs LayersModel (x0 prediction, timestep σ·1000)',
  },
  backends: ['cpu'],
  create: () =>
    loadTfjsModelTeacher({
      source: pathToFileURL(path.join(directory, 'analytic', 'model.json')).href,
      predictionType: 'x0',
      timestepScale: 1000,
    }),
  makeInputs: vectorInputs,
  reference: analyticReference,
  tolerance: 2e-4,
});

/**
 * A GraphModel written by hand in the tfjs graph-model format (a GraphDef as JSON plus a weight shard):
 * ε̂ = x·W + t·v + b. No TensorFlow Python toolchain exists here to convert a SavedModel, so the graph is
 * produced directly in the format the converter emits and loaded through tfjs-converter's loadGraphModel.
 */
async function writeGraphModel(
  dir: string,
  W: Float32Array,
  v: Float32Array,
  b: Float32Array,
  { dynamic = false }: { dynamic?: boolean } = {},
): Promise<void> {
  const floatType = { type: 'DT_FLOAT' };
  const node = (name: string, op: string, input: string[], attr: Record<string, unknown>) => ({
    name,
    op,
    input,
    attr,
  });
  const constant = (name: string, dims: number[]) =>
    node(name, 'Const', [], {
      dtype: floatType,
      value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: dims.map((d) => ({ size: String(d) })) } } },
    });
  const placeholder = (name: string, dims: number[]) =>
    node(name, 'Placeholder', [], {
      dtype: floatType,
      shape: { shape: { dim: dims.map((d) => ({ size: String(d) })) } },
    });
  const modelJSON = {
    format: 'graph-model',
    generatedBy: 'piflow test (hand-written GraphDef)',
    convertedBy: null,
    modelTopology: {
      node: [
        placeholder('x', [-1, C]),
        placeholder('t', [-1, 1]),
        constant('W', [C, C]),
        constant('v', [1, C]),
        constant('b', [C]),
        node('xW', 'MatMul', ['x', 'W'], {
          T: floatType,
          transpose_a: { b: false },
          transpose_b: { b: false },
        }),
        node('tv', 'Mul', ['t', 'v'], { T: floatType }),
        node('sum', 'AddV2', ['xW', 'tv'], { T: floatType }),
        node('out', 'BiasAdd', ['sum', 'b'], { T: floatType, data_format: { s: btoa('NHWC') } }),
        // dynamic: out + (the number of NaN entries of out), through Where, an op tfjs runs only in
        // executeAsync (its output shape depends on the data)
        ...(dynamic
          ? [
              node('axes', 'Const', [], {
                dtype: { type: 'DT_INT32' },
                value: { tensor: { dtype: 'DT_INT32', tensorShape: { dim: [{ size: '2' }] } } },
              }),
              node('nan', 'IsNan', ['out'], { T: floatType }),
              node('where', 'Where', ['nan'], { T: { type: 'DT_BOOL' } }),
              node('whereF', 'Cast', ['where'], { SrcT: { type: 'DT_INT64' }, DstT: floatType }),
              node('count', 'Sum', ['whereF', 'axes'], {
                T: floatType,
                Tidx: { type: 'DT_INT32' },
                keep_dims: { b: false },
              }),
              node('final', 'AddV2', ['out', 'count'], { T: floatType }),
            ]
          : []),
      ],
      library: {},
      versions: { producer: 1 },
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          { name: 'W', shape: [C, C], dtype: 'float32' },
          { name: 'v', shape: [1, C], dtype: 'float32' },
          { name: 'b', shape: [C], dtype: 'float32' },
          ...(dynamic ? [{ name: 'axes', shape: [2], dtype: 'int32' }] : []),
        ],
      },
    ],
  };
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'model.json'), JSON.stringify(modelJSON));
  const floats = new Float32Array([...W, ...v, ...b]);
  const axes = new Int32Array(dynamic ? [0, 1] : []);
  const bytes = new Uint8Array(floats.byteLength + axes.byteLength);
  bytes.set(new Uint8Array(floats.buffer));
  bytes.set(new Uint8Array(axes.buffer), floats.byteLength);
  await writeFile(path.join(dir, 'group1-shard1of1.bin'), bytes);
}

const graphW = Float32Array.from({ length: C * C }, (_, i) => Math.sin(i + 1));
const graphV = Float32Array.from({ length: C }, (_, i) => 0.5 - i);
const graphB = Float32Array.from({ length: C }, (_, i) => 0.1 * i);

describeTeacherContract('tfjs GraphModel (ε prediction) loaded with fileSystemIO', {
  metadata: {
    layout: 'vector',
    sampleShape: [C],
    shift: 1,
    guidance: 'none',
    conditionNames: [],
    description: 'tfjs GraphModel (epsilon prediction, timestep σ·1)',
  },
  backends: ['cpu', 'wasm'],
  create: async () => {
    const dir = path.join(directory, 'graph');
    await writeGraphModel(dir, graphW, graphV, graphB);
    return loadTfjsModelTeacher({
      source: dir,
      predictionType: 'epsilon',
      inputs: { x: 'x', timestep: 't' },
    });
  },
  makeInputs: vectorInputs,
  reference: graphReference,
  tolerance: 1e-4,
});

/** float64 velocity of the hand-written graph: u = (ε̂ − x)/(1 − σ), ε̂ = x·W + σ·v + b. */
function graphReference({ x, sigma }: { x: tf.Tensor; sigma: number[] }): Float64Array {
  const xs = x.dataSync();
  const out = new Float64Array(xs.length);
  for (let i = 0; i < sigma.length; i++) {
    for (let c = 0; c < C; c++) {
      let eps = sigma[i]! * graphV[c]! + graphB[c]!;
      for (let k = 0; k < C; k++) eps += xs[i * C + k]! * graphW[k * C + c]!;
      out[i * C + c] = (eps - xs[i * C + c]!) / (1 - sigma[i]!);
    }
  }
  return out;
}

describe('tfjs GraphModel with a dynamic op', () => {
  beforeAll(() => useBackend('cpu'));

  it('answers asynchronously, and its velocitySync says it cannot (SyncUnavailableError)', async () => {
    const dir = path.join(directory, 'graph-dynamic');
    await writeGraphModel(dir, graphW, graphV, graphB, { dynamic: true });
    const teacher = await loadTfjsModelTeacher({
      source: dir,
      predictionType: 'epsilon',
      inputs: { x: 'x', timestep: 't' },
    });
    const x = tf.tensor2d([0.3, -1, 2, 1.5, 0.2, -0.7], [2, C]);
    const sigma = [0.25, 0.6];
    const sigmaTensor = tf.tensor1d(sigma);
    const u = await teacher.velocity(x, sigmaTensor);
    expect(maxAbsDifference(u.dataSync(), graphReference({ x, sigma }))).toBeLessThan(1e-4);
    const before = tf.memory().numTensors;
    expect(() => teacher.velocitySync(x, 0.5)).toThrow(SyncUnavailableError);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, u, sigmaTensor]);
    teacher.dispose();
  });
});

describe('tfjs model teacher errors', () => {
  it('rejects things that are not models and input mappings that do not fit the model', () => {
    expect(() => createTfjsModelTeacher({ model: {} as never })).toThrow(InvalidArgumentError);
    const model = conditionalModel(1);
    expect(() => createTfjsModelTeacher({ model, inputs: { x: 'nope' } })).toThrow(/inputs\.x/);
    expect(() => createTfjsModelTeacher({ model, inputs: { condition: {} } })).toThrow(
      /no source for "label"/,
    );
    expect(() => createTfjsModelTeacher({ model, predictionType: 'noise' as never })).toThrow(
      /predictionType/,
    );
    expect(() => createTfjsModelTeacher({ model, timestepScale: 0 })).toThrow(/timestepScale/);
    model.dispose();
  });

  it('rejects σ where the prediction type has no velocity, and outputs of the wrong shape', async () => {
    const x0Teacher = createTfjsModelTeacher({ model: analyticModel('x0', 1), predictionType: 'x0' });
    const epsTeacher = createTfjsModelTeacher({
      model: analyticModel('epsilon', 1),
      predictionType: 'epsilon',
    });
    const x = tf.ones([2, C]);
    await expect(x0Teacher.velocity(x, 0)).rejects.toThrow(/sigma/);
    await expect(epsTeacher.velocity(x, 1)).rejects.toThrow(/σ < 1/);
    const narrow = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [C] })] });
    const t = tfl.input({ shape: [1], name: 'timestep' });
    const xi = tfl.input({ shape: [C], name: 'x' });
    const wrong = tfl.model({
      inputs: [xi, t],
      outputs: narrow.apply(
        tfl.layers.add().apply([xi, tfl.layers.dense({ units: C }).apply(t) as tfl.SymbolicTensor]),
      ) as tfl.SymbolicTensor,
    });
    const wrongTeacher = createTfjsModelTeacher({ model: wrong });
    const before = tf.memory().numTensors;
    await expect(wrongTeacher.velocity(x, 0.5)).rejects.toThrow(PiflowError);
    await expect(wrongTeacher.velocity(x, 0.5)).rejects.toThrow(/must have the shape of x/);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    x0Teacher.dispose();
    epsTeacher.dispose();
    wrongTeacher.dispose();
  });

  it('refuses weight shards outside the model directory and says what is missing', async () => {
    const dir = path.join(directory, 'evil');
    await writeGraphModel(dir, graphW, graphV, graphB);
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].paths = ['../conditional/group1-shard1of2.bin'];
    await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
    await expect(loadTfjsModelTeacher({ source: dir })).rejects.toThrow(/leaves the model directory/);
    await expect(loadTfjsModelTeacher({ source: path.join(directory, 'missing') })).rejects.toThrow(
      /Could not read/,
    );
    await expect(loadTfjsModelTeacher({ source: 42 as never })).rejects.toThrow(InvalidArgumentError);
  });

  it('loads the same weights it saved', async () => {
    const teacher = await loadTfjsModelTeacher({ source: path.join(directory, 'conditional') });
    expect(teacher.metadata).toMatchObject({ layout: 'vector', sampleShape: [C], conditionNames: ['label'] });
    const loaded = (teacher.model as tfl.LayersModel).getWeights();
    const original = reference.getWeights();
    expect(loaded.length).toBe(original.length);
    loaded.forEach((w, i) => expect(maxAbsDifference(w.dataSync(), original[i]!.dataSync())).toBe(0));
    teacher.dispose();
  });
});
