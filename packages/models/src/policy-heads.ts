import {
  assertNumber,
  type Condition,
  createRandom,
  describeValue,
  detachTensor,
  type FamilyOptionValues,
  type HeadOutputSpec,
  InvalidArgumentError,
  isPolicyFamily,
  type PolicyFamily,
  type Random,
  resolveFamilyOptions,
  type TrainableStudent,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone } from './backbone';
import { assertBackbone, type FlowModel, isFlowModel } from './flow-model';
import { createDense, type DenseLayer, dense, type NamedVariable, poolPositions } from './layers';
import { silu } from './silu';
import { ensureWasmTrainingKernels } from './wasm-training-kernels';

/** Options of {@link initStudentFromTeacher} (and of the students' `initFrom`). */
export interface TeacherInitOptions {
  /** Std of the Gaussian noise added to the bias of outputs initialised with 'replicate-with-noise' (GM means). Default 0.05. */
  noiseScale?: number;
  /** Seed of that noise. Default 2. */
  seed?: number;
}

/** A π-Flow student made of a backbone and a policy head; trainable by the π-ID trainer. */
export interface PolicyStudent<TParams = unknown> extends TrainableStudent<TParams> {
  /** The npm package of the student's family (recorded in model files). */
  readonly familyPackage?: string;
  /** The resolved head options of its family (e.g. GM's numComponents). */
  readonly headOptions: FamilyOptionValues;
  /** Options its family's `create` gets with its parameters (e.g. DX's shift, segment size, mode). */
  readonly policyOptions: Readonly<Record<string, unknown>>;
  readonly backbone: Backbone;
  /** Backbone variables, then the head's (stable order). */
  readonly variables: readonly tf.Variable[];
  readonly variableNames: readonly string[];
  /** Copies the teacher's backbone weights and initialises the head from its output layer. */
  initFromTeacher(teacher: FlowModel, options?: TeacherInitOptions): void;
  dispose(): void;
}

const studentInit = Symbol('piflow.studentInit');

function outputShape(x: tf.Tensor): { B: number; positions: number[]; C: number } {
  return { B: x.shape[0]!, positions: x.shape.slice(1, -1), C: x.shape[x.rank - 1]! };
}

function checkCompatible(student: PolicyStudent<unknown>, teacher: FlowModel): void {
  const a = student.backbone;
  const b = teacher.backbone;
  if (a === b) {
    throw new InvalidArgumentError(
      'student.backbone',
      "a backbone of the student's own (e.g. teacher.backbone.clone()), not the teacher's",
      'the teacher backbone itself',
    );
  }
  if (a.kind !== b.kind || a.variables.length !== b.variables.length) {
    throw new InvalidArgumentError(
      'teacher',
      `a flow model whose backbone has the student's architecture (${a.kind}, ${a.variables.length} variables)`,
      `${b.kind} with ${b.variables.length} variables`,
    );
  }
  a.variables.forEach((v, i) => {
    const w = b.variables[i]!;
    if (v.shape.length !== w.shape.length || v.shape.some((d, j) => d !== w.shape[j])) {
      throw new InvalidArgumentError(
        'teacher',
        `backbone variable ${a.variableNames[i]} of shape [${v.shape.join(', ')}]`,
        `shape [${w.shape.join(', ')}]`,
      );
    }
  });
}

function copyBackbone(student: PolicyStudent<unknown>, teacher: FlowModel): void {
  tf.tidy(() => {
    teacher.backbone.variables.forEach((v, i) => {
      student.backbone.variables[i]!.assign(v);
    });
  });
}

function namedList(layers: DenseLayer[]): NamedVariable[] {
  return layers.flatMap((l) => [l.kernel, l.bias]);
}

function disposeAll(variables: readonly tf.Variable[]): void {
  for (const v of variables) v.dispose();
}

function checkTeacherInitOptions(options: TeacherInitOptions | undefined): Required<TeacherInitOptions> {
  const noiseScale = options?.noiseScale ?? 0.05;
  const seed = options?.seed ?? 2;
  assertNumber('options.noiseScale', noiseScale, { min: 0 });
  assertNumber('options.seed', seed, { integer: true });
  return { noiseScale, seed };
}

/** Options of {@link createStudent}. */
export interface StudentOptions<TParams = unknown> {
  /** The policy family the student outputs parameters for (its `studentHead` describes the head). */
  family: PolicyFamily<TParams, any>;
  /** The family's head options (declared in `family.studentHead.options`, e.g. GM's `{ numComponents: 8 }`). */
  head?: Record<string, unknown>;
  /** Time-warp shift the student is trained and sampled with (default 1; families may record it). */
  shift?: number;
  /** Raw-time span of one training step, 1/(N − 1 + finalStepSizeScale) (default 1; families may record it). */
  segmentSize?: number;
  /** `create` options to record instead of those the family derives (model loading passes the stored ones). */
  policyOptions?: Readonly<Record<string, unknown>>;
  /** Initialise from this teacher (backbone weights + head from its output layer; see initStudentFromTeacher). */
  initFrom?: FlowModel;
  /** Options of the teacher initialisation. */
  init?: TeacherInitOptions;
  /** Seed of the head's own initial weights. Default 3. */
  seed?: number;
}

interface HeadOutput {
  name: string;
  spec: HeadOutputSpec;
  units: number;
  /** The dense layer giving the output (for 'sample' outputs the MLP's last layer). */
  last: DenseLayer;
  /** 'sample' outputs: the MLP's hidden layer. */
  hidden?: DenseLayer;
}

function checkHeadOutput(family: string, name: string, spec: HeadOutputSpec, C: number): number {
  const where = `family "${family}" studentHead output "${name}"`;
  if (!spec || (spec.per !== 'position' && spec.per !== 'sample')) {
    throw new InvalidArgumentError(`${where}.per`, "'position' or 'sample'", describeValue(spec?.per));
  }
  if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new InvalidArgumentError(
      `${where}.shape`,
      'an array of positive integers',
      describeValue(spec.shape),
    );
  }
  if (spec.layout === 'block-first' && (spec.per !== 'position' || spec.shape.length < 1)) {
    throw new InvalidArgumentError(
      `${where}.layout`,
      "'block-first' only for a per-position block of rank ≥ 1",
      spec.layout,
    );
  }
  const replicates = spec.fromTeacher === 'replicate' || spec.fromTeacher === 'replicate-with-noise';
  if ((replicates || spec.fromTeacher === 'first') && spec.shape[spec.shape.length - 1] !== C) {
    throw new InvalidArgumentError(
      `${where}.shape`,
      `a block ending in the ${C} channels to initialise it from a teacher ('${spec.fromTeacher}')`,
      `[${spec.shape.join(', ')}]`,
    );
  }
  return spec.shape.reduce((a, d) => a * d, 1);
}

function initBias(layer: DenseLayer, spec: HeadOutputSpec, random: Random): void {
  const bias = spec.init?.bias ?? 'zeros';
  if (bias === 'zeros') return;
  const n = layer.outputDim;
  const values =
    'normal' in bias
      ? random.fillNormal(new Float32Array(n)).map((v) => v * bias.normal)
      : new Float32Array(n).fill(bias.constant);
  tf.tidy(() => layer.bias.variable.assign(tf.tensor1d(values)));
}

/**
 * A π-Flow student for any policy family: a backbone plus the head the family's `studentHead` describes.
 * Per-position outputs are dense layers over the backbone's features (reshaped to the block's shape and
 * layout); per-sample outputs are an MLP over the detached conditioning embedding and the detached
 * position-pooled features (their gradient does not reach the backbone, as in the reference's GM log-std).
 * Variables: the backbone's, then each output's in the order the family lists them.
 */
export function createStudent<TParams = Record<string, unknown>>(
  backbone: Backbone,
  options: StudentOptions<TParams>,
): PolicyStudent<TParams> {
  assertBackbone('backbone', backbone);
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(
      'options',
      'an options object { family, head?, … }',
      describeValue(options),
    );
  }
  const { family } = options;
  if (!isPolicyFamily(family)) {
    throw new InvalidArgumentError('options.family', 'a PolicyFamily value', describeValue(family));
  }
  if (!family.studentHead) {
    throw new InvalidArgumentError(
      'options.family',
      'a family that describes its student head (studentHead: { options, build })',
      `family "${family.name}" without studentHead`,
    );
  }
  const headOptions = resolveFamilyOptions('options.head', family.studentHead.options, options.head);
  const shift = options.shift ?? 1;
  assertNumber('options.shift', shift, { min: 0, minExclusive: true });
  const segmentSize = options.segmentSize ?? 1;
  assertNumber('options.segmentSize', segmentSize, { min: 0, max: 1, minExclusive: true });
  const seed = options.seed ?? 3;
  assertNumber('options.seed', seed, { integer: true });
  if (options.initFrom !== undefined && !isFlowModel(options.initFrom)) {
    throw new InvalidArgumentError(
      'options.initFrom',
      'a flow model (createFlowModel)',
      describeValue(options.initFrom),
    );
  }
  const F = backbone.featureChannels;
  const C = backbone.channels;
  const spec = family.studentHead.build({ channels: C, options: headOptions, shift, segmentSize });
  const random = createRandom(seed);
  const outputs: HeadOutput[] = Object.entries(spec.outputs).map(([name, output]) => {
    const units = checkHeadOutput(family.name, name, output, C);
    const layerName = output.layerName ?? `head/${name}`;
    const kernelInit = output.init?.kernel ?? 'glorot';
    if (output.per === 'position') {
      const last = createDense(layerName, F, units, random, kernelInit);
      initBias(last, output, random);
      return { name, spec: output, units, last };
    }
    const hiddenDim = output.hiddenDim ?? 128;
    assertNumber(`family "${family.name}" studentHead output "${name}".hiddenDim`, hiddenDim, {
      min: 1,
      integer: true,
    });
    const hidden = createDense(`${layerName}1`, backbone.embeddingDim + F, hiddenDim, random);
    const last = createDense(`${layerName}2`, hiddenDim, units, random, kernelInit);
    initBias(last, output, random);
    return { name, spec: output, units, last, hidden };
  });
  const headNamed = namedList(outputs.flatMap((o) => (o.hidden ? [o.hidden, o.last] : [o.last])));
  const variables = [...backbone.variables, ...headNamed.map((n) => n.variable)];
  const variableNames = [...backbone.variableNames, ...headNamed.map((n) => n.name)];
  const needsPooled = outputs.some((o) => o.spec.per === 'sample');

  const student: PolicyStudent<TParams> = {
    family: family.name,
    ...(family.packageName ? { familyPackage: family.packageName } : {}),
    headOptions,
    policyOptions: Object.freeze({ ...spec.policyOptions, ...options.policyOptions }),
    backbone,
    variables,
    variableNames,
    predict(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): TParams {
      // Students are trained by callers that know nothing of wasm (π-ID): conv gradients need our kernels.
      ensureWasmTrainingKernels();
      return tf.tidy((): tf.TensorContainer => {
        const { features, embedding } = backbone.apply(x, sigma, condition);
        const { B, positions } = outputShape(x);
        const pooled = needsPooled
          ? tf.concat([detachTensor(embedding), detachTensor(poolPositions(features))], 1)
          : undefined;
        const params: Record<string, tf.Tensor | string> =
          spec.space === undefined ? {} : { space: spec.space };
        for (const o of outputs) {
          let y: tf.Tensor;
          if (o.spec.per === 'sample') {
            y = tf.reshape(dense(silu(dense(silu(pooled!), o.hidden!)), o.last), [B, ...o.spec.shape]);
          } else {
            const out = dense(features, o.last);
            const [first, ...rest] = o.spec.shape;
            if (o.spec.layout !== 'block-first' || positions.length === 0) {
              y = tf.reshape(out, [B, ...positions, ...o.spec.shape]);
            } else {
              // [B, …, n·rest] → n slices [B, 1, …, rest] → concat on axis 1 (avoids a slow rank-5 transpose on wasm)
              const pieces = first === 1 ? [out] : tf.split(out, first!, -1);
              y = tf.concat(
                pieces.map((p) => tf.reshape(p, [B, 1, ...positions, ...rest])),
                1,
              );
            }
          }
          params[o.name] = o.spec.activation === 'logSoftmax' ? tf.logSoftmax(y) : y;
        }
        return params as tf.TensorContainer;
      }) as TParams;
    },
    initFromTeacher(teacher, initOptions) {
      if (!isFlowModel(teacher)) {
        throw new InvalidArgumentError('teacher', 'a flow model (createFlowModel)', describeValue(teacher));
      }
      const { noiseScale, seed: noiseSeed } = checkTeacherInitOptions(initOptions);
      checkCompatible(student, teacher);
      checkOutputLayer(teacher, F, C);
      copyBackbone(student, teacher);
      const noiseRandom = createRandom(noiseSeed);
      for (const o of outputs) initOutputFromTeacher(o, teacher, F, C, noiseRandom, noiseScale);
    },
    dispose() {
      disposeAll(variables);
    },
  };
  Object.defineProperty(student, studentInit, { value: true });
  if (options.initFrom) student.initFromTeacher(options.initFrom, options.init);
  return student;
}

function initOutputFromTeacher(
  o: HeadOutput,
  teacher: FlowModel,
  F: number,
  C: number,
  noiseRandom: Random,
  noiseScale: number,
): void {
  const mode = o.spec.fromTeacher ?? 'reset';
  const { kernel, bias } = teacher.output;
  tf.tidy(() => {
    if (mode === 'replicate' || mode === 'replicate-with-noise') {
      const reps = o.units / C;
      o.last.kernel.variable.assign(tf.tile(kernel.variable, [1, reps]));
      const tiled = tf.tile(bias.variable, [reps]);
      o.last.bias.variable.assign(
        mode === 'replicate'
          ? tiled
          : tf.add(tiled, tf.mul(tf.tensor1d(noiseRandom.fillNormal(new Float32Array(o.units))), noiseScale)),
      );
    } else if (mode === 'first') {
      o.last.kernel.variable.assign(tf.concat([kernel.variable, tf.zeros([F, o.units - C])], 1));
      o.last.bias.variable.assign(tf.concat([bias.variable, tf.zeros([o.units - C])]));
    } else {
      if ((o.spec.init?.kernel ?? 'glorot') === 'zeros') {
        o.last.kernel.variable.assign(tf.zerosLike(o.last.kernel.variable));
      }
      const b = o.spec.init?.bias ?? 'zeros';
      o.last.bias.variable.assign(
        typeof b === 'object' && 'constant' in b
          ? tf.fill([o.units], b.constant)
          : tf.zerosLike(o.last.bias.variable),
      );
    }
  });
}

function checkOutputLayer(teacher: FlowModel, F: number, C: number): void {
  const { inputDim, outputDim } = teacher.output;
  if (inputDim !== F || outputDim !== C) {
    throw new InvalidArgumentError(
      'teacher',
      `a flow model whose output layer maps ${F} features to ${C} channels`,
      `${inputDim} → ${outputDim}`,
    );
  }
}

/**
 * Initialises a student from a teacher as the reference does: the backbone weights are copied (same
 * architecture required) and each head output starts from the teacher's output layer as its family says
 * (`fromTeacher`) — e.g. GM: the output layer replicated K times plus N(0, noiseScale²) noise on the means
 * bias per (k, c), zero log-weight layer (uniform weights), log-std bias log(0.05) with zero weights; DX grid:
 * the output layer replicated N times (polynomial: coefficient 0 only). At (x_src, σ_src) the first policy's
 * velocity is then ≈ the teacher's.
 */
export function initStudentFromTeacher(
  student: PolicyStudent<unknown>,
  teacher: FlowModel,
  options?: TeacherInitOptions,
): void {
  if (typeof student !== 'object' || student === null || !(studentInit in student)) {
    throw new InvalidArgumentError('student', 'a student made by createStudent', describeValue(student));
  }
  student.initFromTeacher(teacher, options);
}
