import {
  assertNumber,
  assertTensor,
  type Condition,
  createRandom,
  describeValue,
  InvalidArgumentError,
  type Random,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { createGroupNorm, type GroupNormLayer, groupNorm } from './group-norm';
import {
  type ConvLayer,
  conv3x3,
  conv3x3Concat,
  createConv3x3,
  createDense,
  type DenseLayer,
  dense,
  denseConcat,
  makeVariable,
  type NamedVariable,
  sinusoidalEmbedding,
  upsampleNearest2x,
} from './layers';
import { silu } from './silu';

/**
 * A backbone: the body of a network, shared by teachers (velocity output) and students (policy heads).
 * `apply` maps (x, σ, condition) to per-position features and the conditioning embedding; an output layer
 * (a per-position dense layer over the features) turns features into the network's output.
 */
export interface Backbone {
  readonly kind: 'mlp' | 'unet';
  /** Options it was built with (normalised), enough to build an identical backbone. */
  readonly config: Readonly<MLPBackboneOptions> | Readonly<UNetBackboneOptions>;
  /** Channels C of x (last axis). */
  readonly channels: number;
  /** Rank of x: 2 for [B, C], 4 for [B, H, W, C]. */
  readonly inputRank: number;
  /** Feature channels F per position that the output layer reads. */
  readonly featureChannels: number;
  /** Size E of the time (+ class) embedding. */
  readonly embeddingDim: number;
  /** Number of classes; the "null" (unconditional, for CFG) label is `numClasses`. Undefined: unconditional. */
  readonly numClasses: number | undefined;
  /** Trainable variables in a stable order. */
  readonly variables: readonly tf.Variable[];
  /** Stable path names, one per variable (same order). */
  readonly variableNames: readonly string[];
  /**
   * Features [B, …positions, F] and the conditioning embedding [B, E]. Synchronous and differentiable with
   * respect to `variables`. The caller owns (and should tidy) the results.
   */
  apply(x: tf.Tensor, sigma: tf.Tensor1D, condition?: Condition): BackboneOutput;
  /** A new backbone with the same architecture and a copy of the current weights. */
  clone(): Backbone;
  dispose(): void;
}

export interface BackboneOutput {
  features: tf.Tensor;
  embedding: tf.Tensor2D;
}

/** Validates the inputs every backbone takes and returns the class labels (or undefined). */
export function checkBackboneInputs(
  backbone: Pick<Backbone, 'channels' | 'inputRank' | 'numClasses'>,
  x: unknown,
  sigma: unknown,
  condition: unknown,
): tf.Tensor1D | undefined {
  const positions = new Array<null>(backbone.inputRank - 2).fill(null);
  assertTensor('x', x, { shape: [null, ...positions, backbone.channels] });
  const B = x.shape[0]!;
  assertTensor('sigma', sigma, { shape: [B] });
  if (condition === undefined) return undefined;
  if (typeof condition !== 'object' || condition === null) {
    throw new InvalidArgumentError(
      'condition',
      'an object { labels } or undefined',
      describeValue(condition),
    );
  }
  const labels = (condition as Condition).labels;
  if (labels === undefined) return undefined;
  if (backbone.numClasses === undefined) {
    throw new InvalidArgumentError(
      'condition.labels',
      'no labels (this backbone was built without numClasses)',
      describeValue(labels),
    );
  }
  assertTensor('condition.labels', labels, { shape: [B], dtype: 'int32' });
  return labels as tf.Tensor1D;
}

/**
 * Time + class embedding shared by the backbones: sinusoidal(σ·1000) → dense → SiLU → dense, plus a class
 * embedding looked up with a one-hot matMul (labels in [0, numClasses], numClasses = null label).
 */
export class ConditionEmbedding {
  readonly time1: DenseLayer;
  readonly time2: DenseLayer;
  readonly classTable: NamedVariable | undefined;

  constructor(
    readonly prefix: string,
    readonly timeEmbedDim: number,
    readonly embeddingDim: number,
    readonly numClasses: number | undefined,
    random: Random,
  ) {
    this.time1 = createDense(`${prefix}/time1`, timeEmbedDim, embeddingDim, random);
    this.time2 = createDense(`${prefix}/time2`, embeddingDim, embeddingDim, random);
    if (numClasses !== undefined) {
      const size = (numClasses + 1) * embeddingDim;
      const values = random.fillNormal(new Float32Array(size));
      for (let i = 0; i < size; i++) values[i]! *= 0.02;
      this.classTable = makeVariable(`${prefix}/classes`, values, [numClasses + 1, embeddingDim]);
    }
  }

  layers(): NamedVariable[] {
    const out = [this.time1.kernel, this.time1.bias, this.time2.kernel, this.time2.bias];
    if (this.classTable) out.push(this.classTable);
    return out;
  }

  /** [B, E] conditioning embedding; missing labels mean the null class. */
  apply(sigma: tf.Tensor1D, labels: tf.Tensor1D | undefined): tf.Tensor2D {
    const t = sinusoidalEmbedding(sigma, this.timeEmbedDim);
    let e = dense(silu(dense(t, this.time1)), this.time2);
    if (this.classTable && this.numClasses !== undefined) {
      const B = sigma.shape[0];
      const ids = labels ?? tf.fill([B], this.numClasses, 'int32');
      const oneHot = tf.cast(tf.oneHot(ids as tf.Tensor1D, this.numClasses + 1), 'float32');
      e = tf.add(e, tf.matMul(oneHot, this.classTable.variable));
    }
    return e as tf.Tensor2D;
  }
}

function checkPositiveInteger(argument: string, value: unknown): number {
  assertNumber(argument, value, { min: 1, integer: true });
  return value;
}

function checkTimeEmbedDim(value: unknown): number {
  assertNumber('options.timeEmbedDim', value, { min: 2, integer: true });
  if (value % 2 !== 0) {
    throw new InvalidArgumentError('options.timeEmbedDim', 'an even integer ≥ 2', String(value));
  }
  return value;
}

function checkNumClasses(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  return checkPositiveInteger('options.numClasses', value);
}

function checkOptionsObject(options: unknown): asserts options is Record<string, unknown> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'an options object', describeValue(options));
  }
}

function buildFromNamed(named: NamedVariable[]) {
  return {
    variables: named.map((n) => n.variable),
    variableNames: named.map((n) => n.name),
  };
}

function copyWeightsInto(target: Backbone, source: Backbone): void {
  tf.tidy(() => {
    source.variables.forEach((v, i) => {
      target.variables[i]!.assign(v);
    });
  });
}

// ------------------------------------------------------------------------------------------------------
// MLP

export interface MLPBackboneOptions {
  /** Size C of the input vectors x [B, C]. */
  inputDim: number;
  /** Hidden width (feature channels F). */
  width: number;
  /** Number of residual blocks (width × width layers). */
  depth: number;
  /** Size of the sinusoidal embedding of t = σ·1000 (even). Default 64. */
  timeEmbedDim?: number;
  /** Size of the conditioning embedding (after the time MLP). Default 128. */
  embeddingDim?: number;
  /** Class-conditional with labels in [0, numClasses); `numClasses` is the null label. */
  numClasses?: number;
  /** Seed of the initial weights. Default 0. */
  seed?: number;
}

/**
 * A residual MLP for vectors [B, C]: h = x·W_in; per block h ← h + SiLU(h·W + b + e·W_e) with the
 * conditioning embedding e; features = SiLU(h) [B, width].
 */
export function createMLPBackbone(options: MLPBackboneOptions): Backbone {
  checkOptionsObject(options);
  const config: Required<Omit<MLPBackboneOptions, 'numClasses'>> & { numClasses?: number } = {
    inputDim: checkPositiveInteger('options.inputDim', options.inputDim),
    width: checkPositiveInteger('options.width', options.width),
    depth: (() => {
      assertNumber('options.depth', options.depth, { min: 0, integer: true });
      return options.depth;
    })(),
    timeEmbedDim: checkTimeEmbedDim(options.timeEmbedDim ?? 64),
    embeddingDim: checkPositiveInteger('options.embeddingDim', options.embeddingDim ?? 128),
    seed: (() => {
      assertNumber('options.seed', options.seed ?? 0, { integer: true });
      return options.seed ?? 0;
    })(),
  };
  const numClasses = checkNumClasses(options.numClasses);
  if (numClasses !== undefined) config.numClasses = numClasses;

  const random = createRandom(config.seed);
  const embed = new ConditionEmbedding(
    'backbone/embed',
    config.timeEmbedDim,
    config.embeddingDim,
    numClasses,
    random,
  );
  const input = createDense('backbone/input', config.inputDim, config.width, random);
  const blocks: Array<{ main: DenseLayer; cond: DenseLayer }> = [];
  for (let i = 0; i < config.depth; i++) {
    blocks.push({
      main: createDense(`backbone/block${i}/dense`, config.width, config.width, random),
      cond: createDense(`backbone/block${i}/embed`, config.embeddingDim, config.width, random),
    });
  }
  const named: NamedVariable[] = [
    ...embed.layers(),
    input.kernel,
    input.bias,
    ...blocks.flatMap((b) => [b.main.kernel, b.main.bias, b.cond.kernel, b.cond.bias]),
  ];
  const { variables, variableNames } = buildFromNamed(named);

  const backbone: Backbone = {
    kind: 'mlp',
    config,
    channels: config.inputDim,
    inputRank: 2,
    featureChannels: config.width,
    embeddingDim: config.embeddingDim,
    numClasses,
    variables,
    variableNames,
    apply(x, sigma, condition) {
      const labels = checkBackboneInputs(backbone, x, sigma, condition);
      return tf.tidy(() => {
        const e = embed.apply(sigma, labels);
        const eAct = silu(e);
        let h = dense(x, input);
        for (const block of blocks) {
          h = tf.add(h, silu(tf.add(dense(h, block.main), dense(eAct, block.cond))));
        }
        return { features: silu(h), embedding: e };
      });
    },
    clone() {
      const copy = createMLPBackbone(config);
      copyWeightsInto(copy, backbone);
      return copy;
    },
    dispose() {
      for (const v of variables) v.dispose();
    },
  };
  return backbone;
}

// ------------------------------------------------------------------------------------------------------
// U-Net

export interface UNetBackboneOptions {
  /** Channels per resolution level, e.g. [16, 32, 64] (each level halves H and W with a 2×2 average pool). */
  channels: readonly number[];
  /** Channels C of the images x [B, H, W, C]. */
  inChannels: number;
  /** Size of the sinusoidal embedding of t = σ·1000 (even). Default 64. */
  timeEmbedDim?: number;
  /** Size of the conditioning embedding. Default 128. */
  embeddingDim?: number;
  /** Class-conditional with labels in [0, numClasses); `numClasses` is the null label. */
  numClasses?: number;
  /**
   * 'group': a GroupNorm before each block's convolutions and before the output features (pre-activation
   * residual blocks as in DDPM / ADM). Default 'none' (the plain blocks of the first shipped teachers).
   */
  norm?: 'none' | 'group';
  /** Groups per GroupNorm (at most; the largest divisor of the channels ≤ this is used). Default 8. */
  normGroups?: number;
  /** Seed of the initial weights. Default 0. */
  seed?: number;
}

interface ResBlock {
  /** One GroupNorm per input part (norm 'group'): the block's input may be upsampled features + a skip. */
  norm1: GroupNormLayer[];
  conv1: ConvLayer;
  norm2: GroupNormLayer | undefined;
  conv2: ConvLayer;
  cond: DenseLayer;
  skip: DenseLayer | undefined;
}

/**
 * A small convolutional U-Net, channels-last: a 3×3 input conv, one residual block per level on the way down
 * (2×2 average pool between levels), a middle block, and one residual block per level on the way up (nearest
 * 2× upsampling, concatenated skip). Each block adds the conditioning embedding (projected) after its first
 * conv. Without normalisation a block is skip(x) + conv2(SiLU(conv1(SiLU(x)) + e)) and the features are
 * SiLU(h); with `norm: 'group'` it is skip(x) + conv2(SiLU(GN(conv1(SiLU(GN(x))) + e))) and the features
 * SiLU(GN(h)) [B, H, W, channels[0]]. H and W must be divisible by 2^(levels − 1).
 */
export function createUNetBackbone(options: UNetBackboneOptions): Backbone {
  checkOptionsObject(options);
  if (!Array.isArray(options.channels) || options.channels.length < 1) {
    throw new InvalidArgumentError(
      'options.channels',
      'a non-empty array of positive integers',
      describeValue(options.channels),
    );
  }
  const levels = options.channels.map((c, i) => checkPositiveInteger(`options.channels[${i}]`, c));
  const norm = options.norm ?? 'none';
  if (norm !== 'none' && norm !== 'group') {
    throw new InvalidArgumentError('options.norm', "'none' or 'group'", describeValue(options.norm));
  }
  const config: Required<Omit<UNetBackboneOptions, 'numClasses' | 'norm' | 'normGroups'>> & {
    numClasses?: number;
    norm?: 'group';
    normGroups?: number;
  } = {
    channels: levels,
    inChannels: checkPositiveInteger('options.inChannels', options.inChannels),
    timeEmbedDim: checkTimeEmbedDim(options.timeEmbedDim ?? 64),
    embeddingDim: checkPositiveInteger('options.embeddingDim', options.embeddingDim ?? 128),
    seed: (() => {
      assertNumber('options.seed', options.seed ?? 0, { integer: true });
      return options.seed ?? 0;
    })(),
  };
  const numClasses = checkNumClasses(options.numClasses);
  if (numClasses !== undefined) config.numClasses = numClasses;
  if (norm === 'group') {
    config.norm = 'group';
    config.normGroups = checkPositiveInteger('options.normGroups', options.normGroups ?? 8);
  }
  const groups = config.normGroups ?? 0;

  const random = createRandom(config.seed);
  const E = config.embeddingDim;
  const embed = new ConditionEmbedding('backbone/embed', config.timeEmbedDim, E, numClasses, random);
  const named: NamedVariable[] = [...embed.layers()];
  const inputConv = createConv3x3('backbone/input', config.inChannels, levels[0]!, random);
  named.push(inputConv.filter, inputConv.bias);

  const normVariables = (layer: GroupNormLayer) => [layer.scale, layer.shift];
  /** `inputs`: the channels of each input part (their sum is the block's input channels). */
  const makeBlock = (name: string, inputs: number[], cout: number): ResBlock => {
    const cin = inputs.reduce((a, b) => a + b, 0);
    const block: ResBlock = {
      norm1: groups
        ? inputs.map((c, i) => createGroupNorm(`${name}/norm1${i ? `_${i}` : ''}`, c, groups))
        : [],
      conv1: createConv3x3(`${name}/conv1`, cin, cout, random),
      norm2: groups ? createGroupNorm(`${name}/norm2`, cout, groups) : undefined,
      conv2: createConv3x3(`${name}/conv2`, cout, cout, random),
      cond: createDense(`${name}/embed`, E, cout, random),
      skip: cin === cout ? undefined : createDense(`${name}/skip`, cin, cout, random),
    };
    for (const layer of block.norm1) named.push(...normVariables(layer));
    if (block.norm2) named.push(...normVariables(block.norm2));
    named.push(
      block.conv1.filter,
      block.conv1.bias,
      block.conv2.filter,
      block.conv2.bias,
      block.cond.kernel,
      block.cond.bias,
    );
    if (block.skip) named.push(block.skip.kernel, block.skip.bias);
    return block;
  };

  const down: ResBlock[] = [];
  for (let i = 0; i < levels.length; i++) {
    down.push(makeBlock(`backbone/down${i}`, [i === 0 ? levels[0]! : levels[i - 1]!], levels[i]!));
  }
  const last = levels[levels.length - 1]!;
  const middle = makeBlock('backbone/middle', [last], last);
  const up: ResBlock[] = [];
  for (let i = levels.length - 2; i >= 0; i--) {
    up.push(makeBlock(`backbone/up${i}`, [levels[i + 1]!, levels[i]!], levels[i]!));
  }
  const outputNorm = groups ? createGroupNorm('backbone/output_norm', levels[0]!, groups) : undefined;
  if (outputNorm) named.push(...normVariables(outputNorm));
  const { variables, variableNames } = buildFromNamed(named);
  const factor = 2 ** (levels.length - 1);

  // A block's input may be several tensors (upsampled features and the skip): their channel concatenation
  // is never materialised. Each block is its own tidy scope: its intermediate activations are released when
  // it returns (a gradient tape keeps what its backward pass needs), so a forward holds the skips and one
  // block's work at a time instead of every activation of the network.
  const runBlock = (parts: tf.Tensor4D[], block: ResBlock, eAct: tf.Tensor2D): tf.Tensor4D =>
    tf.tidy(() => {
      const [B] = parts[0]!.shape;
      let h = conv3x3Concat(
        parts,
        block.conv1,
        groups ? (part, i) => silu(groupNorm(part, block.norm1[i]!)) : silu,
      );
      h = tf.add(h, tf.reshape(dense(eAct, block.cond), [B, 1, 1, block.cond.outputDim]));
      h = conv3x3(silu(block.norm2 ? groupNorm(h, block.norm2) : h), block.conv2);
      const skip = block.skip ? denseConcat(parts, block.skip) : parts[0]!;
      return tf.add(skip, h) as tf.Tensor4D;
    });

  const backbone: Backbone = {
    kind: 'unet',
    config,
    channels: config.inChannels,
    inputRank: 4,
    featureChannels: levels[0]!,
    embeddingDim: E,
    numClasses,
    variables,
    variableNames,
    apply(x, sigma, condition) {
      const labels = checkBackboneInputs(backbone, x, sigma, condition);
      const [, H, W] = x.shape;
      if (H! % factor !== 0 || W! % factor !== 0) {
        throw new InvalidArgumentError(
          'x',
          `images whose height and width are divisible by ${factor} (${levels.length} levels)`,
          describeValue(x),
        );
      }
      return tf.tidy(() => {
        const e = embed.apply(sigma, labels);
        const eAct = silu(e) as tf.Tensor2D;
        let h = conv3x3(x, inputConv) as tf.Tensor4D;
        const skips: tf.Tensor4D[] = [];
        for (let i = 0; i < down.length; i++) {
          const previous = h;
          h = runBlock([h], down[i]!, eAct);
          previous.dispose();
          if (i < down.length - 1) {
            skips.push(h);
            h = tf.avgPool(h, 2, 2, 'valid') as tf.Tensor4D;
          }
        }
        const bottom = h;
        h = runBlock([h], middle, eAct);
        bottom.dispose();
        for (const block of up) {
          const skip = skips.pop()!;
          const previous = h;
          const upsampled = upsampleNearest2x(h);
          h = runBlock([upsampled, skip], block, eAct);
          tf.dispose([previous, upsampled, skip]);
        }
        return { features: silu(outputNorm ? groupNorm(h, outputNorm) : h), embedding: e };
      });
    },
    clone() {
      const copy = createUNetBackbone(config);
      copyWeightsInto(copy, backbone);
      return copy;
    },
    dispose() {
      for (const v of variables) v.dispose();
    },
  };
  return backbone;
}
