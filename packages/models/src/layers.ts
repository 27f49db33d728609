import type { Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Small building blocks shared by the backbones and heads: variables made from JS-generated initial values
 * (seeded, identical on every backend), a dense layer, a 3×3 'same' convolution, SiLU, the sinusoidal time
 * embedding and a one-hot class embedding (no gather: wasm lacks gather's gradient kernel).
 */

let variableCounter = 0;

/** A named, trainable variable holding `values`; the tfjs name gets a unique suffix (names are global). */
export function makeVariable(name: string, values: Float32Array, shape: number[]): NamedVariable {
  const initial = tf.tensor(values, shape, 'float32');
  const variable = tf.variable(initial, true, `${name}_${++variableCounter}`);
  initial.dispose();
  return { name, variable };
}

export interface NamedVariable {
  /** Stable path inside the model (e.g. 'backbone/block0/dense/kernel'), independent of the tfjs name. */
  name: string;
  variable: tf.Variable;
}

/** Glorot-uniform values for a [fanIn, fanOut] matrix (or a conv filter with the given receptive field). */
export function glorotUniform(random: Random, size: number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return random.fillUniform(new Float32Array(size), -limit, limit);
}

export interface DenseLayer {
  kernel: NamedVariable;
  bias: NamedVariable;
  inputDim: number;
  outputDim: number;
}

export type DenseInit = 'glorot' | 'zeros';

export function createDense(
  name: string,
  inputDim: number,
  outputDim: number,
  random: Random,
  init: DenseInit = 'glorot',
): DenseLayer {
  const kernelValues =
    init === 'glorot'
      ? glorotUniform(random, inputDim * outputDim, inputDim, outputDim)
      : new Float32Array(inputDim * outputDim);
  return {
    kernel: makeVariable(`${name}/kernel`, kernelValues, [inputDim, outputDim]),
    bias: makeVariable(`${name}/bias`, new Float32Array(outputDim), [outputDim]),
    inputDim,
    outputDim,
  };
}

/** y = x·W + b over the last axis of x (any rank ≥ 2; flattened to a single matMul). */
export function dense(x: tf.Tensor, layer: DenseLayer): tf.Tensor {
  const shape = x.shape;
  const flat = x.rank === 2 ? x : tf.reshape(x, [-1, shape[shape.length - 1]!]);
  // bias added by the product's kernel (one pass less than a separate add)
  const y = tf.fused.matMul({
    a: flat as tf.Tensor2D,
    b: layer.kernel.variable as tf.Tensor2D,
    bias: layer.bias.variable,
  });
  return x.rank === 2 ? y : tf.reshape(y, [...shape.slice(0, -1), layer.outputDim]);
}

export interface ConvLayer {
  filter: NamedVariable;
  bias: NamedVariable;
  inputChannels: number;
  outputChannels: number;
}

/** A 3×3 convolution, stride 1, 'same' padding (filter [3, 3, Cin, Cout]). */
export function createConv3x3(
  name: string,
  inputChannels: number,
  outputChannels: number,
  random: Random,
): ConvLayer {
  const size = 9 * inputChannels * outputChannels;
  return {
    filter: makeVariable(
      `${name}/filter`,
      glorotUniform(random, size, 9 * inputChannels, 9 * outputChannels),
      [3, 3, inputChannels, outputChannels],
    ),
    bias: makeVariable(`${name}/bias`, new Float32Array(outputChannels), [outputChannels]),
    inputChannels,
    outputChannels,
  };
}

export function conv3x3(x: tf.Tensor, layer: ConvLayer): tf.Tensor {
  return convWithBias(x, layer.filter.variable, layer.bias.variable);
}

/** A stride-1 'same' convolution whose kernel also adds the bias (one pass less than a separate add). */
function convWithBias(x: tf.Tensor, filter: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor {
  return tf.fused.conv2d({
    x: x as tf.Tensor4D,
    filter: filter as tf.Tensor4D,
    strides: 1,
    pad: 'same',
    ...(bias ? { bias } : {}),
  });
}

/** The time scale the networks see: t = σ·1000 (as the reference's ImageNet DiT, num_timesteps = 1000). */
export const TIME_SCALE = 1000;

/**
 * Sinusoidal embedding of t = σ·1000: [cos(t·f_i), sin(t·f_i)] with f_i = 10000^(−i/half), i < half,
 * dim = 2·half. Returns [B, dim].
 */
export function sinusoidalEmbedding(sigma: tf.Tensor1D, dim: number): tf.Tensor2D {
  const half = dim / 2;
  const frequencies = new Float32Array(half);
  for (let i = 0; i < half; i++) frequencies[i] = Math.exp((-Math.log(10000) * i) / half);
  return tf.tidy(() => {
    const t = tf.mul(tf.reshape(sigma, [-1, 1]), TIME_SCALE);
    const angles = tf.mul(t, tf.tensor2d(frequencies, [1, half]));
    return tf.concat([tf.cos(angles), tf.sin(angles)], 1) as tf.Tensor2D;
  });
}

/** Mean over every axis between the batch axis and the channel axis: [B, …, F] → [B, F]. */
export function poolPositions(features: tf.Tensor): tf.Tensor2D {
  if (features.rank === 2) return features as tf.Tensor2D;
  if (features.rank === 4) {
    // one average pool over the whole image: 20× a mean over axes 1, 2 on wasm (which transposes first)
    const [B, H, W, C] = features.shape as [number, number, number, number];
    return tf.tidy(() => tf.reshape(tf.avgPool(features as tf.Tensor4D, [H, W], 1, 'valid'), [B, C]));
  }
  const axes: number[] = [];
  for (let i = 1; i < features.rank - 1; i++) axes.push(i);
  return tf.mean(features, axes) as tf.Tensor2D;
}

/**
 * Nearest-neighbour 2× upsampling of [B, H, W, C]: forward with concat + reshape, gradient 4·avgPool(dy, 2)
 * (the sum over each 2×2 block). Concat's own gradient (SplitV along the channel axis) is very slow on wasm.
 */
export const upsampleNearest2x = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  const [B, H, W, C] = x.shape as [number, number, number, number];
  const wide = tf.reshape(tf.concat([x, x], 3), [B, H, 2 * W, C]);
  const value = tf.reshape(tf.concat([wide, wide], 2), [B, 2 * H, 2 * W, C]);
  return {
    value,
    gradFunc: (dy: tf.Tensor) => tf.mul(tf.avgPool(dy as tf.Tensor4D, 2, 2, 'valid'), 4),
  };
}) as (x: tf.Tensor4D) => tf.Tensor4D;

/**
 * conv3x3 of the channel-concatenation of `parts` without materialising it: Σ_i conv(parts[i], filter slice i)
 * (the same sum; avoids concat, whose gradient is a slow channel-axis SplitV on wasm).
 */
export function conv3x3Concat(
  parts: tf.Tensor[],
  layer: ConvLayer,
  activation?: (t: tf.Tensor, part: number) => tf.Tensor,
): tf.Tensor {
  let offset = 0;
  let sum: tf.Tensor | undefined;
  const filter = layer.filter.variable;
  const [kh, kw, , co] = filter.shape as [number, number, number, number];
  for (const [i, part] of parts.entries()) {
    const c = part.shape[part.rank - 1]!;
    const slice = parts.length === 1 ? filter : tf.slice(filter, [0, 0, offset, 0], [kh, kw, c, co]);
    const input = activation ? activation(part, i) : part;
    const y = convWithBias(input, slice, i === 0 ? layer.bias.variable : undefined);
    sum = sum ? tf.add(sum, y) : y;
    offset += c;
  }
  return sum!;
}

/** dense() of the last-axis concatenation of `parts` without materialising it (kernel row slices). */
export function denseConcat(parts: tf.Tensor[], layer: DenseLayer): tf.Tensor {
  let offset = 0;
  let sum: tf.Tensor | undefined;
  for (const part of parts) {
    const c = part.shape[part.rank - 1]!;
    const kernel =
      parts.length === 1
        ? layer.kernel.variable
        : tf.slice(layer.kernel.variable, [offset, 0], [c, layer.outputDim]);
    const flat = tf.reshape(part, [-1, c]) as tf.Tensor2D;
    const bias = sum ? undefined : layer.bias.variable;
    const y = tf.fused.matMul({ a: flat, b: kernel as tf.Tensor2D, ...(bias ? { bias } : {}) });
    sum = sum ? tf.add(sum, y) : y;
    offset += c;
  }
  const out = sum!;
  const shape = parts[0]!.shape;
  return tf.reshape(out, [...shape.slice(0, -1), layer.outputDim]);
}
