import {
  AdamW,
  assertNumber,
  assertOneOf,
  assertTensor,
  createRandom,
  describeValue,
  EMA,
  InvalidArgumentError,
  Random,
  registerGradients,
  warp,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { FlowModel } from './flow-model';
import { isFlowModel } from './flow-model';
import { ensureWasmTrainingKernels } from './wasm-training-kernels';

export type SigmaSampling = 'uniform' | 'logit-normal';

export interface SigmaSamplingOptions {
  /** 'uniform' (raw time r ~ U(0, 1)) or 'logit-normal' (r = sigmoid(N(mean, std²))). */
  sampling?: SigmaSampling;
  /** Time-warp shift applied to r: σ = s·r / (1 + (s − 1)·r). Default 1. */
  shift?: number;
  /** Logit-normal location. Default 0. */
  logitMean?: number;
  /** Logit-normal scale. Default 1. */
  logitStd?: number;
  /** Smallest raw time (σ = 0 gives no training signal). Default 1e-4. */
  minRawTime?: number;
}

/** Training noise levels σ for a batch: raw time r from the chosen law, clamped to [minRawTime, 1], warped. */
export function sampleTrainingSigmas(
  random: Random,
  count: number,
  options: SigmaSamplingOptions = {},
): Float32Array {
  if (!(random instanceof Random)) {
    throw new InvalidArgumentError('random', 'a Random (createRandom)', describeValue(random));
  }
  assertNumber('count', count, { min: 1, integer: true });
  const sampling = options.sampling ?? 'uniform';
  assertOneOf('options.sampling', sampling, ['uniform', 'logit-normal'] as const);
  const shift = options.shift ?? 1;
  assertNumber('options.shift', shift, { min: 0, minExclusive: true });
  const mean = options.logitMean ?? 0;
  const std = options.logitStd ?? 1;
  assertNumber('options.logitMean', mean);
  assertNumber('options.logitStd', std, { min: 0 });
  const minRaw = options.minRawTime ?? 1e-4;
  assertNumber('options.minRawTime', minRaw, { min: 0, max: 1 });
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const r = sampling === 'uniform' ? random.uniform() : 1 / (1 + Math.exp(-(mean + std * random.normal())));
    out[i] = warp(Math.min(Math.max(r, minRaw), 1), shift);
  }
  return out;
}

/** A training batch: clean data x0 and, for class-conditional models, int32 labels. */
export interface FlowBatch {
  x: tf.Tensor;
  labels?: tf.Tensor1D;
}

export interface FlowStepInfo {
  /** 1-based step number (counting from `options.startStep`). */
  step: number;
  loss: number;
  /** Learning rate used at this step (after warm-up). */
  learningRate: number;
  /** Wall-clock steps per second so far in this call. */
  stepsPerSecond: number;
}

export interface TrainFlowModelOptions extends Omit<SigmaSamplingOptions, 'sampling'> {
  steps: number;
  batchSize: number;
  /** Learning rate (peak, after warm-up). Default 1e-3. Ignored when an `optimizer` is given (it has its own). */
  learningRate?: number;
  /** Linear warm-up from lr/warmupSteps to lr over this many steps. Default 0. Ignored with an `optimizer`. */
  warmupSteps?: number;
  /** Adam β1, β2. Default [0.9, 0.999]. Ignored with an `optimizer`. */
  betas?: readonly [number, number];
  /** Decoupled (AdamW) weight decay per step: v ← v·(1 − lr·weightDecay). Default 0. Ignored with an `optimizer`. */
  weightDecay?: number;
  /** Clip gradients to this global L2 norm. Default: no clipping. Ignored with an `optimizer`. */
  gradientClip?: number;
  sigmaSampling?: SigmaSampling;
  /**
   * EMA decay (e.g. 0.999: a bias-corrected constant-decay average), or an EMA of the model's variables to
   * continue. Default: no EMA.
   */
  ema?: number | EMA;
  /** Probability of replacing a label by the null label (for classifier-free guidance). Default 0. */
  labelDropout?: number;
  /** Seeded generator (or a seed) for σ, noise and label dropout. Default seed 0. */
  random?: Random | number;
  /** An AdamW over the model's variables to continue with (its state and settings are kept); by default a new one. */
  optimizer?: AdamW;
  /** Called after every step (awaited). Return `false` to stop early. */
  onStep?: (info: FlowStepInfo) => undefined | boolean | Promise<undefined | boolean>;
  /** Stops after the current step when aborted. */
  signal?: AbortSignal;
  /** Step number the first step of this call gets (minus one), e.g. to resume a warm-up. Default 0. */
  startStep?: number;
}

export interface TrainFlowModelResult {
  steps: number;
  /** Loss per step. */
  losses: Float32Array;
  stepsPerSecond: number;
  /** Updates skipped because the gradient norm was not finite. */
  skipped: number;
  optimizer: AdamW;
  ema: EMA | undefined;
}

/**
 * The optimizer `trainFlowModel` makes by default (make it yourself to checkpoint or continue it): the core's
 * AdamW over the model's variables, β = (0.9, 0.999) unless given, and a linear warm-up from lr/warmupSteps
 * to lr over the first `warmupSteps` updates.
 */
export function flowModelOptimizer(
  model: FlowModel,
  options: Pick<
    TrainFlowModelOptions,
    'learningRate' | 'warmupSteps' | 'betas' | 'weightDecay' | 'gradientClip'
  > & { schedule?: (step: number) => number } = {},
): AdamW {
  if (!isFlowModel(model)) {
    throw new InvalidArgumentError('model', 'a flow model (createFlowModel)', describeValue(model));
  }
  const warmupSteps = options.warmupSteps ?? 0;
  const [beta1, beta2] = options.betas ?? [0.9, 0.999];
  return new AdamW(model.variables as tf.Variable[], {
    learningRate: options.learningRate ?? 1e-3,
    beta1,
    beta2,
    weightDecay: options.weightDecay ?? 0,
    warmupSteps,
    ...(warmupSteps > 0 ? { warmupFactor: 1 / warmupSteps } : {}),
    ...(options.gradientClip !== undefined ? { gradientClip: options.gradientClip } : {}),
    ...(options.schedule !== undefined ? { schedule: options.schedule } : {}),
  });
}

/**
 * Flow-matching (rectified-flow) training of a velocity model: for clean x0, noise ε and σ from the chosen
 * law, x_σ = (1 − σ)·x0 + σ·ε and the loss is mean((u_θ(x_σ, σ, c) − (ε − x0))²). The core's AdamW (β from
 * options, decoupled weight decay, warm-up, gradient clipping, non-finite updates skipped), its EMA, and label
 * dropout. `data(batchSize,
 * random)` returns a fresh batch (this function disposes it). On the wasm backend the wasm training kernels
 * are installed first.
 */
export async function trainFlowModel(
  model: FlowModel,
  data: (batchSize: number, random: Random) => FlowBatch | tf.Tensor,
  options: TrainFlowModelOptions,
): Promise<TrainFlowModelResult> {
  if (!isFlowModel(model)) {
    throw new InvalidArgumentError('model', 'a flow model (createFlowModel)', describeValue(model));
  }
  if (typeof data !== 'function') {
    throw new InvalidArgumentError('data', 'a function (batchSize, random) => batch', describeValue(data));
  }
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(
      'options',
      'an options object { steps, batchSize, … }',
      describeValue(options),
    );
  }
  const { steps, batchSize } = options;
  assertNumber('options.steps', steps, { min: 0, integer: true });
  assertNumber('options.batchSize', batchSize, { min: 1, integer: true });
  const learningRate = options.learningRate ?? 1e-3;
  assertNumber('options.learningRate', learningRate, { min: 0, minExclusive: true });
  const warmupSteps = options.warmupSteps ?? 0;
  assertNumber('options.warmupSteps', warmupSteps, { min: 0, integer: true });
  const [beta1, beta2] = options.betas ?? [0.9, 0.999];
  assertNumber('options.betas[0]', beta1, { min: 0, max: 1, maxExclusive: true });
  assertNumber('options.betas[1]', beta2, { min: 0, max: 1, maxExclusive: true });
  const weightDecay = options.weightDecay ?? 0;
  assertNumber('options.weightDecay', weightDecay, { min: 0 });
  if (options.gradientClip !== undefined) {
    assertNumber('options.gradientClip', options.gradientClip, { min: 0, minExclusive: true });
  }
  const labelDropout = options.labelDropout ?? 0;
  assertNumber('options.labelDropout', labelDropout, { min: 0, max: 1 });
  const numClasses = model.backbone.numClasses;
  if (labelDropout > 0 && numClasses === undefined) {
    throw new InvalidArgumentError(
      'options.labelDropout',
      '0 for a model without classes',
      String(labelDropout),
    );
  }
  const startStep = options.startStep ?? 0;
  assertNumber('options.startStep', startStep, { min: 0, integer: true });
  const sigmaOptions: SigmaSamplingOptions = {
    sampling: options.sigmaSampling ?? 'uniform',
    ...(options.shift !== undefined ? { shift: options.shift } : {}),
    ...(options.logitMean !== undefined ? { logitMean: options.logitMean } : {}),
    ...(options.logitStd !== undefined ? { logitStd: options.logitStd } : {}),
    ...(options.minRawTime !== undefined ? { minRawTime: options.minRawTime } : {}),
  };
  // Validate the σ options once, before any training.
  sampleTrainingSigmas(createRandom(0), 1, sigmaOptions);
  const random = options.random instanceof Random ? options.random : createRandom(options.random ?? 0);

  await registerGradients();
  ensureWasmTrainingKernels();

  const variables = model.variables as tf.Variable[];
  if (options.optimizer !== undefined && !(options.optimizer instanceof AdamW)) {
    throw new InvalidArgumentError(
      'options.optimizer',
      "an AdamW of @piflow/core over the model's variables",
      describeValue(options.optimizer),
    );
  }
  const optimizer =
    options.optimizer ??
    flowModelOptimizer(model, {
      learningRate,
      betas: [beta1, beta2],
      weightDecay,
      warmupSteps,
      ...(options.gradientClip !== undefined ? { gradientClip: options.gradientClip } : {}),
    });
  let ema: EMA | undefined;
  if (typeof options.ema === 'number') {
    assertNumber('options.ema', options.ema, { min: 0, max: 1, maxExclusive: true });
    ema = new EMA(variables, { decay: options.ema, biasCorrection: true });
  } else if (options.ema !== undefined) {
    if (!(options.ema instanceof EMA)) {
      throw new InvalidArgumentError(
        'options.ema',
        'a decay in [0, 1) or an EMA of @piflow/core',
        describeValue(options.ema),
      );
    }
    ema = options.ema;
  }

  const losses = new Float32Array(steps);
  const started = performance.now();
  let done = 0;
  let skipped = 0;
  for (let i = 0; i < steps; i++) {
    if (options.signal?.aborted) break;
    const step = startStep + i + 1;
    const lr = optimizer.currentLearningRate();
    const batch = data(batchSize, random);
    const x0 = batch instanceof tf.Tensor ? batch : batch?.x;
    const labels = batch instanceof tf.Tensor ? undefined : batch?.labels;
    try {
      assertTensor('data().x', x0, {
        shape: [...new Array<null>(model.backbone.inputRank - 1).fill(null), model.backbone.channels],
      });
      const B = x0.shape[0]!;
      if (labels !== undefined) assertTensor('data().labels', labels, { shape: [B], dtype: 'int32' });
      const sigma = sampleTrainingSigmas(random, B, sigmaOptions);
      const noise = random.fillNormal(new Float32Array(x0.size));
      let dropped: Int32Array | undefined;
      if (labels !== undefined && numClasses !== undefined && labelDropout > 0) {
        dropped = Int32Array.from(await labels.data());
        for (let b = 0; b < B; b++) if (random.uniform() < labelDropout) dropped[b] = numClasses;
      }
      const inputs = tf.tidy(() => {
        const s = tf.tensor1d(sigma);
        const eps = tf.tensor(noise, x0.shape);
        const column = tf.reshape(s, [B, ...new Array<number>(x0.rank - 1).fill(1)]);
        return {
          s: s as tf.Tensor1D,
          xt: tf.add(tf.mul(tf.sub(1, column), x0), tf.mul(column, eps)),
          target: tf.sub(eps, x0),
          labels: dropped ? tf.tensor1d(dropped, 'int32') : undefined,
        };
      });
      try {
        const condLabels = inputs.labels ?? labels;
        const condition = condLabels ? { labels: condLabels } : undefined;
        const { loss, gradientNorm } = await optimizer.minimize(() =>
          tf.mean(tf.square(tf.sub(model.velocity(inputs.xt, inputs.s, condition), inputs.target))),
        );
        losses[i] = loss;
        if (!Number.isFinite(gradientNorm)) skipped++;
      } finally {
        tf.dispose([inputs.s, inputs.xt, inputs.target, ...(inputs.labels ? [inputs.labels] : [])]);
      }
    } finally {
      tf.dispose([x0 as tf.Tensor, labels as tf.Tensor].filter((t) => t instanceof tf.Tensor));
    }
    ema?.update();
    done++;
    if (options.onStep) {
      const elapsed = (performance.now() - started) / 1000;
      const verdict = await options.onStep({
        step,
        loss: losses[i]!,
        learningRate: lr,
        stepsPerSecond: done / Math.max(elapsed, 1e-9),
      });
      if (verdict === false) break;
    }
  }
  const elapsed = (performance.now() - started) / 1000;
  return {
    steps: done,
    losses: losses.slice(0, done),
    stepsPerSecond: done / Math.max(elapsed, 1e-9),
    skipped,
    optimizer,
    ema,
  };
}
