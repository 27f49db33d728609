import {
  assertNumber,
  assertOneOf,
  type Condition,
  createRandom,
  describeValue,
  detachTensor,
  InvalidArgumentError,
  type TrainableStudent,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone } from './backbone';
import { assertBackbone, type FlowModel, isFlowModel } from './flow-model';
import { createDense, type DenseLayer, dense, type NamedVariable, poolPositions, silu } from './layers';
import { ensureWasmTrainingKernels } from './wasm-training-kernels';

/** What a GM head outputs: u-space GM parameters (the `GMUParams` of @piflow/policy-gm). */
export interface GMHeadParams {
  space: 'u';
  /** [B, …positions, K, C] component means of u. */
  means: tf.Tensor;
  /** [B, …positions, K], log-softmax-normalised over K. */
  logweights: tf.Tensor;
  /** [B] shared log standard deviation of u. */
  logstd: tf.Tensor1D;
}

/** What a DX head outputs: u-space DX parameters (the `DXUParams` of @piflow/policy-dx). */
export interface DXHeadParams {
  space: 'u';
  /** [B, N, …positions, C]: X[n] = x_src − σ_src·uGrid[n]. */
  uGrid: tf.Tensor;
}

/** Options of {@link initStudentFromTeacher} (and of the students' `initFrom`). */
export interface TeacherInitOptions {
  /** Std of the Gaussian noise added per (k, c) to the replicated GM means bias. Default 0.05. */
  noiseScale?: number;
  /** Seed of that noise. Default 2. */
  seed?: number;
}

/** A π-Flow student made of a backbone and a policy head; trainable by the π-ID trainer. */
export interface PolicyStudent<TParams> extends TrainableStudent<TParams> {
  readonly backbone: Backbone;
  /** Backbone variables, then the head's (stable order). */
  readonly variables: readonly tf.Variable[];
  readonly variableNames: readonly string[];
  /** Copies the teacher's backbone weights and initialises the head from its output layer. */
  initFromTeacher(teacher: FlowModel, options?: TeacherInitOptions): void;
  dispose(): void;
}

export interface GMStudent extends PolicyStudent<GMHeadParams> {
  readonly family: 'gm';
  readonly numComponents: number;
}

export interface DXStudent extends PolicyStudent<DXHeadParams> {
  readonly family: 'dx';
  readonly numPoints: number;
  readonly policyOptions: Readonly<{ shift: number; segmentSize: number; mode: 'grid' | 'polynomial' }>;
}

export interface GMStudentOptions {
  /** Number of mixture components K per position. */
  numComponents: number;
  /** Hidden width of the log-std MLP. Default 128. */
  logstdHiddenDim?: number;
  /** Initial log-std of u (the bias of the log-std MLP's last layer). Default log(0.05). */
  initialLogstd?: number;
  /** Initialise from this teacher (backbone weights + replicated output layer; see initStudentFromTeacher). */
  initFrom?: FlowModel;
  /** Options of the teacher initialisation. */
  init?: TeacherInitOptions;
  /** Seed of the head's own initial weights. Default 3. */
  seed?: number;
}

export interface DXStudentOptions {
  /** Number of grid points (or polynomial coefficients) N. */
  numPoints: number;
  /** Shift of the DX policy's time warp (intrinsic). Default 1. */
  shift?: number;
  /** Raw-time span of the grid below σ_src (intrinsic). Default 1. */
  segmentSize?: number;
  /** 'grid' (default) or 'polynomial'. */
  mode?: 'grid' | 'polynomial';
  initFrom?: FlowModel;
  init?: TeacherInitOptions;
  /** Seed of the head's initial weights. Default 3. */
  seed?: number;
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

/**
 * A GM π-Flow student: the backbone's features go through
 * - a means layer F → K·C (layout k·C + c) giving means [B, …, K, C],
 * - a log-weights layer F → K, log-softmax over K, giving logweights [B, …, K],
 * - a log-std MLP on the detached conditioning embedding concatenated with the detached position-pooled
 *   features: SiLU → dense(hidden) → SiLU → dense(1), giving logstd [B] (its gradient does not reach the
 *   backbone, as in the reference).
 */
export function createGMStudent(backbone: Backbone, options: GMStudentOptions): GMStudent {
  assertBackbone('backbone', backbone);
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(
      'options',
      'an options object { numComponents, … }',
      describeValue(options),
    );
  }
  const K = options.numComponents;
  assertNumber('options.numComponents', K, { min: 1, integer: true });
  const hidden = options.logstdHiddenDim ?? 128;
  assertNumber('options.logstdHiddenDim', hidden, { min: 1, integer: true });
  const initialLogstd = options.initialLogstd ?? Math.log(0.05);
  assertNumber('options.initialLogstd', initialLogstd);
  const seed = options.seed ?? 3;
  assertNumber('options.seed', seed, { integer: true });
  if (options.initFrom !== undefined && !isFlowModel(options.initFrom)) {
    throw new InvalidArgumentError(
      'options.initFrom',
      'a flow model (createFlowModel)',
      describeValue(options.initFrom),
    );
  }
  const random = createRandom(seed);
  const F = backbone.featureChannels;
  const C = backbone.channels;
  const meansLayer = createDense('head/means', F, K * C, random);
  // Reference init without a teacher: means bias N(0, 1)·0.1 so the components differ.
  tf.tidy(() => {
    meansLayer.bias.variable.assign(
      tf.tensor1d(random.fillNormal(new Float32Array(K * C)).map((v) => v * 0.1)),
    );
  });
  const logweightsLayer = createDense('head/logweights', F, K, random, 'zeros');
  const logstd1 = createDense('head/logstd1', backbone.embeddingDim + F, hidden, random);
  const logstd2 = createDense('head/logstd2', hidden, 1, random, 'zeros');
  tf.tidy(() => logstd2.bias.variable.assign(tf.tensor1d([initialLogstd])));
  const headNamed = namedList([meansLayer, logweightsLayer, logstd1, logstd2]);
  const variables = [...backbone.variables, ...headNamed.map((n) => n.variable)];
  const variableNames = [...backbone.variableNames, ...headNamed.map((n) => n.name)];

  const student: GMStudent = {
    family: 'gm',
    numComponents: K,
    backbone,
    variables,
    variableNames,
    predict(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): GMHeadParams {
      // Students are trained by callers that know nothing of wasm (π-ID): conv gradients need our kernels.
      ensureWasmTrainingKernels();
      return tf.tidy(() => {
        const { features, embedding } = backbone.apply(x, sigma, condition);
        const { B, positions } = outputShape(x);
        const means = tf.reshape(dense(features, meansLayer), [B, ...positions, K, C]);
        const logweights = tf.logSoftmax(dense(features, logweightsLayer));
        const logstdInput = tf.concat([detachTensor(embedding), detachTensor(poolPositions(features))], 1);
        const logstd = tf.reshape(dense(silu(dense(silu(logstdInput), logstd1)), logstd2), [
          B,
        ]) as tf.Tensor1D;
        return { space: 'u' as const, means, logweights, logstd };
      });
    },
    initFromTeacher(teacher, initOptions) {
      if (!isFlowModel(teacher)) {
        throw new InvalidArgumentError('teacher', 'a flow model (createFlowModel)', describeValue(teacher));
      }
      const { noiseScale, seed: noiseSeed } = checkTeacherInitOptions(initOptions);
      checkCompatible(student, teacher);
      checkOutputLayer(teacher, F, C);
      copyBackbone(student, teacher);
      const noise = createRandom(noiseSeed).fillNormal(new Float32Array(K * C));
      tf.tidy(() => {
        meansLayer.kernel.variable.assign(tf.tile(teacher.output.kernel.variable, [1, K]));
        meansLayer.bias.variable.assign(
          tf.add(tf.tile(teacher.output.bias.variable, [K]), tf.mul(tf.tensor1d(noise), noiseScale)),
        );
        logweightsLayer.kernel.variable.assign(tf.zerosLike(logweightsLayer.kernel.variable));
        logweightsLayer.bias.variable.assign(tf.zerosLike(logweightsLayer.bias.variable));
        logstd2.kernel.variable.assign(tf.zerosLike(logstd2.kernel.variable));
        logstd2.bias.variable.assign(tf.tensor1d([initialLogstd]));
      });
    },
    dispose() {
      disposeAll(variables);
    },
  };
  Object.defineProperty(student, studentInit, { value: true });
  if (options.initFrom) student.initFromTeacher(options.initFrom, options.init);
  return student;
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
 * A DX π-Flow student: one dense layer F → N·C (grid-major, n·C + c) over the backbone's features, reshaped
 * to uGrid [B, N, …positions, C].
 */
export function createDXStudent(backbone: Backbone, options: DXStudentOptions): DXStudent {
  assertBackbone('backbone', backbone);
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'an options object { numPoints, … }', describeValue(options));
  }
  const N = options.numPoints;
  assertNumber('options.numPoints', N, { min: 1, integer: true });
  const shift = options.shift ?? 1;
  assertNumber('options.shift', shift, { min: 0, minExclusive: true });
  const segmentSize = options.segmentSize ?? 1;
  assertNumber('options.segmentSize', segmentSize, { min: 0, max: 1, minExclusive: true });
  const mode = options.mode ?? 'grid';
  assertOneOf('options.mode', mode, ['grid', 'polynomial'] as const);
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
  const gridLayer = createDense('head/grid', F, N * C, createRandom(seed));
  const headNamed = namedList([gridLayer]);
  const variables = [...backbone.variables, ...headNamed.map((n) => n.variable)];
  const variableNames = [...backbone.variableNames, ...headNamed.map((n) => n.name)];

  const student: DXStudent = {
    family: 'dx',
    numPoints: N,
    policyOptions: Object.freeze({ shift, segmentSize, mode }),
    backbone,
    variables,
    variableNames,
    predict(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): DXHeadParams {
      // Students are trained by callers that know nothing of wasm (π-ID): conv gradients need our kernels.
      ensureWasmTrainingKernels();
      return tf.tidy(() => {
        const { features } = backbone.apply(x, sigma, condition);
        const { B, positions } = outputShape(x);
        const out = dense(features, gridLayer);
        let uGrid: tf.Tensor;
        if (positions.length === 0) {
          uGrid = tf.reshape(out, [B, N, C]);
        } else {
          // [B, …, N·C] → N slices [B, 1, …, C] → concat on axis 1 (avoids a slow rank-5 transpose on wasm).
          const pieces = N === 1 ? [out] : tf.split(out, N, -1);
          uGrid = tf.concat(
            pieces.map((p) => tf.reshape(p, [B, 1, ...positions, C])),
            1,
          );
        }
        return { space: 'u' as const, uGrid };
      });
    },
    initFromTeacher(teacher, initOptions) {
      if (!isFlowModel(teacher)) {
        throw new InvalidArgumentError('teacher', 'a flow model (createFlowModel)', describeValue(teacher));
      }
      checkTeacherInitOptions(initOptions);
      checkCompatible(student, teacher);
      checkOutputLayer(teacher, F, C);
      copyBackbone(student, teacher);
      tf.tidy(() => {
        if (mode === 'grid') {
          gridLayer.kernel.variable.assign(tf.tile(teacher.output.kernel.variable, [1, N]));
          gridLayer.bias.variable.assign(tf.tile(teacher.output.bias.variable, [N]));
        } else {
          // Polynomial: coefficient 0 = the teacher's projection, the others start at zero output.
          gridLayer.kernel.variable.assign(
            tf.concat([teacher.output.kernel.variable, tf.zeros([F, (N - 1) * C])], 1),
          );
          gridLayer.bias.variable.assign(tf.concat([teacher.output.bias.variable, tf.zeros([(N - 1) * C])]));
        }
      });
    },
    dispose() {
      disposeAll(variables);
    },
  };
  Object.defineProperty(student, studentInit, { value: true });
  if (options.initFrom) student.initFromTeacher(options.initFrom, options.init);
  return student;
}

/**
 * Initialises a student from a teacher as the reference does: the backbone weights are copied (same
 * architecture required) and the head is built from the teacher's output layer — GM: the output layer
 * replicated K times plus N(0, noiseScale²) noise on the means bias per (k, c), zero log-weight layer
 * (uniform weights), log-std bias log(0.05) with zero weights; DX grid: the output layer replicated N times
 * (polynomial: coefficient 0 only). At (x_src, σ_src) the first policy's velocity is then ≈ the teacher's.
 */
export function initStudentFromTeacher(
  student: PolicyStudent<unknown>,
  teacher: FlowModel,
  options?: TeacherInitOptions,
): void {
  if (typeof student !== 'object' || student === null || !(studentInit in student)) {
    throw new InvalidArgumentError(
      'student',
      'a student made by createGMStudent or createDXStudent',
      describeValue(student),
    );
  }
  student.initFromTeacher(teacher, options);
}
