import type { TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors';
import { type KernelBackend, kernelIO } from './kernel-io';
import { assertNumber, describeValue } from './validation';

export interface AdamWOptions {
  learningRate?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Linear warm-up steps from warmupFactor·lr to lr (default 0). */
  warmupSteps?: number;
  warmupFactor?: number;
  /** Clip the global gradient norm to this value (default: no clipping). */
  gradientClip?: number;
  /**
   * The update (0-based) from which gradients are clipped; earlier updates are not (reference
   * `diffusion_grad_clip_begin_iter`: 100 for FLUX, 400 for ImageNet). Default 0.
   */
  gradientClipBegin?: number;
  /**
   * Learning-rate factor for update t (0-based), applied after warm-up, e.g. a cosine decay
   * `(t) => 0.05 + 0.95 · ½(1 + cos(π t / T))`. Default: constant 1.
   */
  schedule?: (step: number) => number;
}

export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

/**
 * Σ over the gradients of Σ g², as a scalar tensor (read synchronously or not by the caller). Summed pairwise,
 * not with `tf.addN`: tfjs's WebGPU AddN binds every input to one shader, and a device allows 8 storage
 * buffers per stage, so AddN over more than 7 gradients fails validation there and returns garbage.
 */
function squaredNorm(gradients: readonly tf.Tensor[]): tf.Tensor {
  if (fused(gradients)) {
    return tf
      .engine()
      .runKernel(SQUARED_NORM, Object.fromEntries(gradients.map((g, i) => [`g${i}`, g]))) as tf.Tensor;
  }
  return tf.tidy(() =>
    gradients.map((g) => tf.sum(tf.square(g))).reduce((total, s) => tf.add(total, s), tf.scalar(0)),
  );
}

// On the cpu and wasm backends the squared norm and each variable's update are one kernel each (JS loops over
// the backend's arrays, float64 arithmetic): a U-Net of ~100 variables otherwise runs ~17 tfjs ops per
// variable per step, whose per-op cost dominates for small tensors. Other backends (WebGPU) run the ops.
const SQUARED_NORM = 'PiflowSquaredNorm';
const UPDATE = 'PiflowAdamWUpdate';
const FUSED_BACKENDS = ['cpu', 'wasm'];

/** Whether the fused kernels run these tensors (float32 on cpu or wasm); registers them the first time. */
function fused(tensors: readonly tf.Tensor[]): boolean {
  const backend = tf.getBackend();
  if (!FUSED_BACKENDS.includes(backend) || tensors.some((t) => t.dtype !== 'float32')) return false;
  if (!tf.getKernel(UPDATE, backend)) {
    tf.registerKernel({
      kernelName: SQUARED_NORM,
      backendName: backend,
      kernelFunc: squaredNormKernel as never,
    });
    tf.registerKernel({ kernelName: UPDATE, backendName: backend, kernelFunc: updateKernel as never });
  }
  return true;
}

interface UpdateAttrs {
  clip: number;
  beta1: number;
  beta2: number;
  b1t: number;
  b2t: number;
  epsilon: number;
  lr: number;
  decay: number;
}

interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  backend: KernelBackend;
  attrs: UpdateAttrs;
}

function squaredNormKernel({ inputs, backend }: KernelArgs): TensorInfo {
  const access = kernelIO(backend);
  const { infos, views } = access.outputs([[]]);
  let total = 0;
  for (const info of Object.values(inputs)) {
    const g = access.read(info);
    for (let i = 0; i < g.length; i++) total += g[i]! * g[i]!;
  }
  views()[0]![0] = total;
  return infos[0]!;
}

/** The new parameter, first and second moments of one variable (the composed update below, fused). */
function updateKernel({ inputs, backend, attrs }: KernelArgs): TensorInfo[] {
  const access = kernelIO(backend);
  const shape = inputs.param!.shape;
  const { infos, views } = access.outputs([shape, shape, shape]);
  const [param, m, v] = views() as [Float32Array, Float32Array, Float32Array];
  const [p0, m0, v0, g0] = ['param', 'm', 'v', 'g'].map((name) => access.read(inputs[name]!));
  const { clip, beta1, beta2, b1t, b2t, epsilon, lr, decay } = attrs;
  for (let i = 0; i < param.length; i++) {
    const g = g0![i]! * clip;
    const mi = beta1 * m0![i]! + (1 - beta1) * g;
    const vi = beta2 * v0![i]! + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = p0![i]! * (1 - lr * decay) - (lr * (mi / b1t)) / (Math.sqrt(vi / b2t) + epsilon);
  }
  return infos;
}

/**
 * AdamW with linear warm-up, an optional learning-rate schedule and global-norm gradient clipping (from a
 * begin update) over a fixed list of variables; an update whose gradient norm is not finite is skipped. The
 * one optimizer of every piflow trainer (teachers, classifiers, π-ID). Its state is plain arrays so checkpoints
 * can hold it. Defaults follow the π-Flow reference (β = (0.9, 0.95)).
 */
export class AdamW {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly warmupSteps: number;
  readonly warmupFactor: number;
  readonly gradientClip: number;
  readonly gradientClipBegin: number;
  private readonly schedule: ((step: number) => number) | undefined;
  private m: tf.Tensor[];
  private v: tf.Tensor[];
  private t = 0;

  constructor(
    private readonly variables: readonly tf.Variable[],
    options: AdamWOptions = {},
  ) {
    this.learningRate = options.learningRate ?? 1e-3;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.95;
    this.epsilon = options.epsilon ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.warmupSteps = options.warmupSteps ?? 0;
    this.warmupFactor = options.warmupFactor ?? 0.001;
    this.gradientClip = options.gradientClip ?? Number.POSITIVE_INFINITY;
    this.gradientClipBegin = options.gradientClipBegin ?? 0;
    if (options.schedule !== undefined && typeof options.schedule !== 'function') {
      throw new InvalidArgumentError(
        'schedule',
        'a function (step) => factor',
        describeValue(options.schedule),
      );
    }
    this.schedule = options.schedule;
    assertNumber('gradientClipBegin', this.gradientClipBegin, { min: 0, integer: true });
    assertNumber('learningRate', this.learningRate, { min: 0, minExclusive: true });
    assertNumber('beta1', this.beta1, { min: 0, max: 1, maxExclusive: true });
    assertNumber('beta2', this.beta2, { min: 0, max: 1, maxExclusive: true });
    assertNumber('weightDecay', this.weightDecay, { min: 0 });
    assertNumber('warmupSteps', this.warmupSteps, { min: 0, integer: true });
    if (this.gradientClip !== Number.POSITIVE_INFINITY) {
      assertNumber('gradientClip', this.gradientClip, { min: 0, minExclusive: true });
    }
    this.m = variables.map((x) => tf.zerosLike(x));
    this.v = variables.map((x) => tf.zerosLike(x));
  }

  /** Updates applied so far. */
  get step(): number {
    return this.t;
  }

  /** Learning rate at the next update (after warm-up scaling and the schedule). */
  currentLearningRate(): number {
    const factor = this.schedule ? this.schedule(this.t) : 1;
    if (this.warmupSteps === 0 || this.t >= this.warmupSteps) return this.learningRate * factor;
    const f = this.warmupFactor + (1 - this.warmupFactor) * (this.t / this.warmupSteps);
    return this.learningRate * f * factor;
  }

  /**
   * One training step: the gradients of `loss()` with respect to the variables, then `applyAsync`. Returns
   * the loss and the pre-clip gradient norm (a non-finite norm: the update was skipped). Leaves no tensors.
   */
  async minimize(loss: () => tf.Scalar): Promise<{ loss: number; gradientNorm: number }> {
    const { value, grads } = tf.variableGrads(loss, this.variables as tf.Variable[]);
    // a variable the loss does not reach gets a zero gradient
    const gradients = this.variables.map((v) => grads[v.name] ?? tf.zerosLike(v));
    try {
      const gradientNorm = await this.applyAsync(gradients);
      return { loss: (await value.data())[0]!, gradientNorm };
    } finally {
      tf.dispose([value, ...gradients]);
    }
  }

  /**
   * Applies one update from gradients (same order as the variables); returns the pre-clip global norm. A
   * non-finite norm leaves the weights and moments untouched.
   */
  apply(gradients: readonly tf.Tensor[]): number {
    const squared = squaredNorm(gradients);
    const norm = Math.sqrt(squared.dataSync()[0]!);
    squared.dispose();
    return this.update(gradients, norm);
  }

  /**
   * `apply` reading the gradient norm asynchronously: works on every backend (tfjs's WebGPU backend in Node
   * cannot read GPU values synchronously).
   */
  async applyAsync(gradients: readonly tf.Tensor[]): Promise<number> {
    const squared = squaredNorm(gradients);
    const norm = Math.sqrt((await squared.data())[0]!);
    squared.dispose();
    return this.update(gradients, norm);
  }

  private update(gradients: readonly tf.Tensor[], norm: number): number {
    if (!Number.isFinite(norm)) return norm;
    const clip = this.t >= this.gradientClipBegin && norm > this.gradientClip ? this.gradientClip / norm : 1;
    const lr = this.currentLearningRate();
    this.t += 1;
    const b1t = 1 - this.beta1 ** this.t;
    const b2t = 1 - this.beta2 ** this.t;
    this.variables.forEach((variable, i) => {
      if (fused([variable, gradients[i]!])) {
        const [param, m, v] = tf.engine().runKernel(
          UPDATE,
          { param: variable, m: this.m[i]!, v: this.v[i]!, g: gradients[i]! },
          {
            clip,
            beta1: this.beta1,
            beta2: this.beta2,
            b1t,
            b2t,
            epsilon: this.epsilon,
            lr,
            decay: this.weightDecay,
          },
        ) as tf.Tensor[];
        variable.assign(param!);
        tf.dispose([param!, this.m[i]!, this.v[i]!]);
        this.m[i] = m!;
        this.v[i] = v!;
        return;
      }
      const [m, v] = tf.tidy(() => {
        const g = clip === 1 ? gradients[i]! : tf.mul(gradients[i]!, clip);
        const m = tf.add(tf.mul(this.m[i]!, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i]!, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        const update = tf.div(tf.div(m, b1t), tf.add(tf.sqrt(tf.div(v, b2t)), this.epsilon));
        const decayed = this.weightDecay > 0 ? tf.mul(variable, 1 - lr * this.weightDecay) : variable;
        variable.assign(tf.sub(decayed, tf.mul(update, lr)));
        return [m, v];
      });
      this.m[i]!.dispose();
      this.v[i]!.dispose();
      this.m[i] = m!;
      this.v[i] = v!;
    });
    return norm;
  }

  getState(): AdamWState {
    return {
      step: this.t,
      m: this.m.map((t) => Float32Array.from(t.dataSync())),
      v: this.v.map((t) => Float32Array.from(t.dataSync())),
    };
  }

  /** `getState` reading the moments asynchronously (every backend). */
  async getStateAsync(): Promise<AdamWState> {
    const read = (tensors: tf.Tensor[]) =>
      Promise.all(tensors.map(async (t) => Float32Array.from(await t.data())));
    return { step: this.t, m: await read(this.m), v: await read(this.v) };
  }

  setState(state: AdamWState): void {
    if (state.m.length !== this.variables.length || state.v.length !== this.variables.length) {
      throw new Error(
        `Optimizer state holds ${state.m.length} moments but the student has ${this.variables.length} variables.`,
      );
    }
    tf.dispose([...this.m, ...this.v]);
    this.m = state.m.map((a, i) => tf.tensor(a, this.variables[i]!.shape));
    this.v = state.v.map((a, i) => tf.tensor(a, this.variables[i]!.shape));
    this.t = state.step;
  }

  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}

/**
 * A cosine learning-rate factor for AdamW's `schedule`: 1 at update 0, `final` at update `steps` and after,
 * final + (1 − final)·½(1 + cos(π t / steps)) in between.
 */
export function cosineDecay(steps: number, final: number): (step: number) => number {
  assertNumber('steps', steps, { min: 1, integer: true });
  assertNumber('final', final, { min: 0, max: 1 });
  return (t) => final + (1 - final) * 0.5 * (1 + Math.cos((Math.PI * Math.min(t, steps)) / steps));
}
