import {
  assertNumber,
  assertSigma,
  assertTensor,
  type Condition,
  createRandom,
  describeValue,
  InvalidArgumentError,
  type Sigma,
  sigmaVector,
  type Teacher,
  type TeacherMetadata,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone } from './backbone';
import { createDense, type DenseLayer, dense } from './layers';

/**
 * A flow model (a teacher): backbone features → a per-position dense output layer → velocity
 * u(x, σ, condition) in the rectified-flow convention u = ε − x0.
 */
export interface FlowModel {
  readonly backbone: Backbone;
  /** The output layer (features F → channels C), copied into the student heads at initialisation. */
  readonly output: DenseLayer;
  /** Backbone variables, then the output kernel and bias (stable order). */
  readonly variables: readonly tf.Variable[];
  readonly variableNames: readonly string[];
  /** Velocity [shape of x]. Synchronous and differentiable with respect to `variables`. */
  velocity(x: tf.Tensor, sigma: Sigma, condition?: Condition): tf.Tensor;
  /** The model as a {@link Teacher} (asynchronous interface), optionally with classifier-free guidance. */
  asTeacher(options?: FlowTeacherOptions): Teacher;
  dispose(): void;
}

export interface FlowModelOptions {
  /** Seed of the output layer's initial weights. Default 1. */
  seed?: number;
  /** 'glorot' (default) or 'zeros' (the model starts by predicting u = 0). */
  outputInit?: 'glorot' | 'zeros';
}

export interface FlowTeacherOptions {
  /**
   * Classifier-free guidance scale g (default 1 = none): u = u_c + (g − 1)·(u_c − u_∅), the unconditional
   * pass using the null label. Needs a class-conditional backbone when g ≠ 1.
   */
  guidanceScale?: number;
  /**
   * σ interval [low, high] where guidance applies; elsewhere the conditional velocity is used (reference
   * `guidance_interval`). Default [0, 1]: everywhere.
   */
  guidanceInterval?: readonly [number, number];
  /** The shift recorded in the teacher's metadata (the one it should be sampled with). Default 1. */
  shift?: number;
}

export function isBackbone(value: unknown): value is Backbone {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Backbone).apply === 'function' &&
    Array.isArray((value as Backbone).variables) &&
    typeof (value as Backbone).featureChannels === 'number'
  );
}

export function assertBackbone(argument: string, value: unknown): asserts value is Backbone {
  if (!isBackbone(value)) {
    throw new InvalidArgumentError(
      argument,
      'a backbone (createMLPBackbone / createUNetBackbone)',
      describeValue(value),
    );
  }
}

export function isFlowModel(value: unknown): value is FlowModel {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as FlowModel).velocity === 'function' &&
    isBackbone((value as FlowModel).backbone) &&
    typeof (value as FlowModel).output === 'object'
  );
}

/** Builds a velocity model (teacher) from a backbone; the model owns the backbone. */
export function createFlowModel(backbone: Backbone, options: FlowModelOptions = {}): FlowModel {
  assertBackbone('backbone', backbone);
  const seed = options.seed ?? 1;
  assertNumber('options.seed', seed, { integer: true });
  const outputInit = options.outputInit ?? 'glorot';
  if (outputInit !== 'glorot' && outputInit !== 'zeros') {
    throw new InvalidArgumentError('options.outputInit', "'glorot' or 'zeros'", describeValue(outputInit));
  }
  const output = createDense(
    'output',
    backbone.featureChannels,
    backbone.channels,
    createRandom(seed),
    outputInit,
  );
  const variables = [...backbone.variables, output.kernel.variable, output.bias.variable];
  const variableNames = [...backbone.variableNames, output.kernel.name, output.bias.name];

  const model: FlowModel = {
    backbone,
    output,
    variables,
    variableNames,
    velocity(x, sigma, condition) {
      assertTensor('x', x, { rank: backbone.inputRank });
      const B = x.shape[0]!;
      assertSigma('sigma', sigma, B);
      return tf.tidy(() => {
        const s = typeof sigma === 'number' ? sigmaVector(sigma, B) : sigma;
        const { features } = backbone.apply(x, s, condition);
        return dense(features, output);
      });
    },
    asTeacher(teacherOptions = {}) {
      const g = teacherOptions.guidanceScale ?? 1;
      assertNumber('options.guidanceScale', g, { min: 0 });
      const shift = teacherOptions.shift ?? 1;
      assertNumber('options.shift', shift, { min: 0, minExclusive: true });
      const interval = teacherOptions.guidanceInterval ?? [0, 1];
      if (!Array.isArray(interval) || interval.length !== 2) {
        throw new InvalidArgumentError(
          'options.guidanceInterval',
          'a pair [low, high] of σ values in [0, 1]',
          String(interval),
        );
      }
      assertNumber('options.guidanceInterval[0]', interval[0], { min: 0, max: 1 });
      assertNumber('options.guidanceInterval[1]', interval[1], { min: interval[0], max: 1 });
      const everywhere = interval[0] === 0 && interval[1] === 1;
      if (g !== 1 && backbone.numClasses === undefined) {
        throw new InvalidArgumentError(
          'options.guidanceScale',
          '1 for a backbone without classes (guidance needs numClasses)',
          String(g),
        );
      }
      const metadata: TeacherMetadata = {
        ...(backbone.inputRank === 2 ? { sampleShape: [backbone.channels] } : {}),
        layout: backbone.inputRank === 2 ? 'vector' : 'image',
        shift,
        guidance: g === 1 ? 'none' : 'cfg',
        conditionNames: backbone.numClasses === undefined ? [] : ['labels'],
        description: `${backbone.kind} flow model${g === 1 ? '' : `, CFG ${g}${everywhere ? '' : ` on σ ∈ [${interval[0]}, ${interval[1]}]`}`}`,
      };
      const velocitySync = (x: tf.Tensor, sigma: Sigma, condition?: Condition): tf.Tensor => {
        if (g === 1) return model.velocity(x, sigma, condition);
        assertTensor('x', x, { rank: backbone.inputRank });
        const B = x.shape[0]!;
        assertSigma('sigma', sigma, B);
        return tf.tidy(() => {
          const s = typeof sigma === 'number' ? sigmaVector(sigma, B) : sigma;
          const labels = condition?.labels ?? tf.fill([B], backbone.numClasses!, 'int32');
          const both = model.velocity(tf.concat([x, x], 0), tf.concat([s, s], 0) as tf.Tensor1D, {
            labels: tf.concat([labels, tf.fill([B], backbone.numClasses!, 'int32')], 0),
          });
          const [conditional, unconditional] = tf.split(both, 2, 0) as [tf.Tensor, tf.Tensor];
          // per sample: g − 1 inside the interval, 0 outside (computed on the device, no readback)
          const gain = everywhere
            ? tf.scalar(g - 1)
            : tf.reshape(
                tf.where(
                  tf.logicalAnd(tf.greaterEqual(s, interval[0]), tf.lessEqual(s, interval[1])),
                  tf.fill([B], g - 1),
                  tf.zeros([B]),
                ),
                [B, ...new Array<number>(x.rank - 1).fill(1)],
              );
          return tf.add(conditional, tf.mul(tf.sub(conditional, unconditional), gain));
        });
      };
      return {
        metadata,
        velocitySync,
        velocity: async (x, sigma, condition) => velocitySync(x, sigma, condition),
      };
    },
    dispose() {
      backbone.dispose();
      output.kernel.variable.dispose();
      output.bias.variable.dispose();
    },
  };
  return model;
}
