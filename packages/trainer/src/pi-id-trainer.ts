import {
  AdamW,
  addNoise,
  assertNumber,
  type Condition,
  createRandom,
  disposeParams,
  EMA,
  type EMAState,
  type FamilyOptionValues,
  InvalidArgumentError,
  PiflowError,
  type Policy,
  type PolicyFamily,
  Random,
  registerGradients,
  sigmaVector,
  substepCount,
  type Teacher,
  type TrainableStudent,
  warp,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { readLatestCheckpoint, type TrainingCheckpoint, writeCheckpointFile } from './checkpoint';
import { averageVelocity, disposeStates, rolloutBetween, type State } from './intermediate-states';
import {
  type LossWeighting,
  lossWeight,
  type PiIDTrainerOptions,
  type ResolvedPiIDOptions,
  resolvePiIDOptions,
  type StepMetrics,
  type TrainOptions,
} from './pi-id-options';
import { intermediateOffsets, sampleSegments, teacherRatioAt } from './segments';

export class NonFiniteLossError extends PiflowError {
  override name = 'NonFiniteLossError';
}

/**
 * π-ID: policy-based imitation distillation. Each iteration builds the policy from the student at
 * (x_src, σ_src), rolls the *detached* policy to a few intermediate states along its own trajectory (with
 * scheduled teacher mixing), asks the teacher for u there, and regresses the non-detached policy's
 * (window-averaged) velocity onto it with an L2 loss. Gradients reach the student only through the policy's
 * parameters.
 *
 * Implementation note: teachers are asynchronous (remote teachers exist) and tf.variableGrads needs a
 * synchronous function, so an iteration runs in two phases: (1) no tape — student forward, detached rollouts
 * (fused kernels allowed), teacher queries; (2) on the tape — student forward again and the loss at the
 * recorded states. The second forward costs one extra student evaluation per iteration.
 */
export class PiIDTrainer<P = unknown> {
  readonly student: TrainableStudent<P>;
  readonly family: PolicyFamily<P, any>;
  /** The family's resolved training options (defaults filled in). */
  readonly familyOptions: FamilyOptionValues;
  readonly teacher: Teacher;
  readonly optimizer: AdamW;
  readonly ema: EMA | undefined;
  /** The weighting of the loss in use (the option, else the family's, else 'velocity'). */
  readonly lossWeighting: LossWeighting;
  private random: Random;
  private stepCount = 0;
  /** Iterations run, skipped ones included: the clock of trajectory mixing (as the reference's iteration). */
  private iterationCount = 0;
  private nonFinite = 0;
  private readonly o: ResolvedPiIDOptions;

  constructor(readonly options: PiIDTrainerOptions<P>) {
    const { student, family, teacher } = options;
    const resolved = resolvePiIDOptions(options);
    this.o = resolved.o;
    this.familyOptions = resolved.familyOptions;
    this.lossWeighting = resolved.lossWeighting;
    this.student = student;
    this.family = family;
    this.teacher = teacher;
    this.random = createRandom(options.seed ?? 0);
    this.optimizer = new AdamW(student.variables, options.optimizer);
    this.ema = options.ema === false ? undefined : new EMA(student.variables, options.ema ?? { gamma: 7 });
  }

  /** Optimiser steps completed. */
  get step(): number {
    return this.stepCount;
  }

  /** One π-ID iteration (one optimiser update, or a skipped one for a non-finite loss). */
  async trainStep(): Promise<StepMetrics> {
    await registerGradients();
    const started = performance.now();
    const teacherRatio = teacherRatioAt(this.iterationCount, this.o.numDecayIters);
    const { loss, grads } = await this.accumulatedGradients(teacherRatio);
    this.iterationCount += 1;
    const learningRate = this.optimizer.currentLearningRate();
    let gradientNorm = Number.NaN;
    let skipped = !Number.isFinite(loss);
    if (!skipped) {
      // apply() leaves the weights untouched when the gradients are not finite
      gradientNorm = await this.optimizer.applyAsync(grads);
      skipped = !Number.isFinite(gradientNorm);
    }
    tf.dispose(grads);
    if (skipped) {
      this.nonFinite += 1;
      if (this.nonFinite > this.o.maxNonFiniteSteps) {
        throw new NonFiniteLossError(
          `The loss or its gradient was not finite for ${this.nonFinite} consecutive steps (last loss: ${loss}); aborting. Lower the learning rate or check the teacher.`,
        );
      }
    } else {
      this.nonFinite = 0;
      this.ema?.update(this.stepCount);
      this.stepCount += 1;
    }
    const metrics: StepMetrics = {
      step: this.stepCount,
      loss,
      learningRate,
      gradientNorm,
      teacherRatio,
      skipped,
      seconds: (performance.now() - started) / 1000,
    };
    this.options.onStep?.(metrics);
    return metrics;
  }

  /** Iterations run (optimiser steps plus skipped non-finite ones). */
  get iteration(): number {
    return this.iterationCount;
  }

  /** The mean loss and gradients over `gradientAccumulation` micro-batches. */
  private async accumulatedGradients(teacherRatio: number): Promise<{ loss: number; grads: tf.Tensor[] }> {
    const k = this.o.gradientAccumulation;
    let loss = 0;
    let sum: tf.Tensor[] | undefined;
    try {
      for (let i = 0; i < k; i++) {
        const micro = this.options.data
          ? await this.dataIteration(teacherRatio)
          : await this.dataFreeIteration(teacherRatio);
        loss += micro.loss / k;
        if (!sum) sum = micro.grads;
        else {
          const previous = sum;
          sum = previous.map((g, j) => tf.add(g, micro.grads[j]!));
          tf.dispose([...previous, ...micro.grads]);
        }
      }
    } catch (error) {
      if (sum) tf.dispose(sum);
      throw error;
    }
    if (k === 1) return { loss, grads: sum! };
    const mean = sum!.map((g) => tf.div(g, k));
    tf.dispose(sum!);
    return { loss, grads: mean };
  }

  /**
   * Trains until `totalSteps` optimiser steps are done (counting steps restored by `resume`), writing
   * checkpoints every `checkpoint.every` steps and at the end or on abort.
   */
  async train(totalSteps: number, options: TrainOptions = {}): Promise<{ step: number; aborted: boolean }> {
    assertNumber('totalSteps', totalSteps, { min: 0, integer: true });
    const every = this.options.checkpoint?.every ?? 100;
    let aborted = false;
    while (this.stepCount < totalSteps) {
      if (options.signal?.aborted) {
        aborted = true;
        break;
      }
      const before = this.stepCount;
      await this.trainStep();
      if (this.options.checkpoint && this.stepCount !== before && this.stepCount % every === 0)
        await this.save();
    }
    if (this.options.checkpoint) await this.save();
    return { step: this.stepCount, aborted };
  }

  /** Writes a checkpoint to the checkpoint folder (atomically); returns its path. */
  async save(): Promise<string> {
    if (!this.options.checkpoint)
      throw new PiflowError('No checkpoint folder configured (options.checkpoint.dir).');
    return writeCheckpointFile(
      this.options.checkpoint.dir,
      await this.toCheckpointAsync(),
      this.options.checkpoint.keep ?? 3,
    );
  }

  /**
   * Continues from the newest intact checkpoint in the checkpoint folder (a corrupted newer one is skipped
   * with a warning). Returns the step it resumed at, or undefined when there was none.
   */
  async resume(): Promise<number | undefined> {
    if (!this.options.checkpoint)
      throw new PiflowError('No checkpoint folder configured (options.checkpoint.dir).');
    const found = await readLatestCheckpoint(this.options.checkpoint.dir, (file, error) =>
      this.options.onWarning?.(`Skipping checkpoint ${file}: ${error.message}`),
    );
    if (!found) return undefined;
    this.loadCheckpoint(found.checkpoint);
    return this.stepCount;
  }

  /** `toCheckpoint` reading the tensors asynchronously (every backend; `save` uses it). */
  async toCheckpointAsync(): Promise<TrainingCheckpoint> {
    return this.checkpointOf(
      await Promise.all(this.student.variables.map(async (v) => Float32Array.from(await v.data()))),
      this.ema ? await this.ema.getStateAsync() : undefined,
      await this.optimizer.getStateAsync(),
    );
  }

  toCheckpoint(): TrainingCheckpoint {
    return this.checkpointOf(
      this.student.variables.map((v) => Float32Array.from(v.dataSync())),
      this.ema ? this.ema.getState() : undefined,
      this.optimizer.getState(),
    );
  }

  private checkpointOf(
    variables: Float32Array[],
    ema: EMAState | undefined,
    optimizer: TrainingCheckpoint['optimizer'],
  ): TrainingCheckpoint {
    return {
      step: this.stepCount,
      iteration: this.iterationCount,
      randomState: this.random.state(),
      variables,
      ...(ema ? { ema } : {}),
      optimizer,
      shapes: this.student.variables.map((v) => [...v.shape]),
      metadata: { family: this.family.name, ...this.options.metadata },
    };
  }

  loadCheckpoint(checkpoint: TrainingCheckpoint): void {
    const vars = this.student.variables;
    if (checkpoint.variables.length !== vars.length) {
      throw new PiflowError(
        `The checkpoint holds ${checkpoint.variables.length} variables; this student has ${vars.length}.`,
      );
    }
    vars.forEach((v, i) => {
      const shape = checkpoint.shapes[i]!;
      if (shape.length !== v.shape.length || shape.some((d, j) => d !== v.shape[j])) {
        throw new PiflowError(
          `Checkpoint variable ${i} has shape [${shape}], the student's is [${v.shape}].`,
        );
      }
    });
    vars.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(checkpoint.variables[i]!, v.shape))));
    this.optimizer.setState(checkpoint.optimizer);
    if (this.ema && checkpoint.ema) this.ema.setState(checkpoint.ema);
    this.random = Random.fromState(checkpoint.randomState);
    this.stepCount = checkpoint.step;
    this.iterationCount = checkpoint.iteration ?? checkpoint.step;
  }

  /** Runs `fn` with the EMA weights in the student (or the live weights when EMA is off). */
  withEMA<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.ema ? this.ema.swap(fn) : Promise.resolve(fn());
  }

  dispose(): void {
    this.optimizer.dispose();
    this.ema?.dispose();
  }

  // ---- one iteration -------------------------------------------------------------------------------------

  private async dataIteration(teacherRatio: number): Promise<{ loss: number; grads: tf.Tensor[] }> {
    const { batchSize: B } = this.o;
    const seg = sampleSegments(
      B,
      this.o.numInferenceSteps,
      this.o.finalStepSizeScale,
      this.o.shift,
      this.random,
      this.options.segmentSampling ?? 'grid',
    );
    const batch = await this.options.data!(B, this.random);
    if (batch.x0.shape[0] !== B) {
      throw new InvalidArgumentError('data()', `a batch of ${B} samples`, `x0 of shape [${batch.x0.shape}]`);
    }
    const sigmaSrc = tf.tensor1d(seg.sigmaSrc);
    const noise = this.random.normalTensor(batch.x0.shape);
    const xSrc = addNoise(batch.x0, noise, sigmaSrc);
    tf.dispose([noise, batch.x0]);
    try {
      const { states } = await this.collectStates(
        xSrc,
        sigmaSrc,
        seg.rawSrc,
        seg.rawLength,
        batch.condition,
        teacherRatio,
        false,
      );
      try {
        return await this.gradients(xSrc, sigmaSrc, batch.condition, states, 1);
      } finally {
        disposeStates(states);
      }
    } finally {
      tf.dispose([xSrc, sigmaSrc]);
      disposeParams(batch.condition);
    }
  }

  private async dataFreeIteration(teacherRatio: number): Promise<{ loss: number; grads: tf.Tensor[] }> {
    const { batchSize: B, numInferenceSteps: N, finalStepSizeScale: f } = this.o;
    const condition = this.options.conditions?.(B, this.random);
    const delta = 1 / (N - 1 + f);
    let x = this.random.normalTensor([B, ...this.options.sampleShape!]);
    let rawSrc = 1;
    let total = 0;
    let accumulated: tf.Tensor[] | undefined;
    try {
      for (let i = 0; i < N; i++) {
        const length = i === N - 1 ? f * delta : delta;
        const sigmaValue = warp(Math.min(Math.max(rawSrc, 0), 1), this.o.shift);
        const sigmaSrc = sigmaVector(sigmaValue, B);
        const { states, xDst } = await this.collectStates(
          x,
          sigmaSrc,
          new Float64Array(B).fill(rawSrc),
          new Float64Array(B).fill(length),
          condition,
          teacherRatio,
          true,
        );
        let result: { loss: number; grads: tf.Tensor[] };
        try {
          result = await this.gradients(x, sigmaSrc, condition, states, length);
        } finally {
          disposeStates(states);
          sigmaSrc.dispose();
        }
        total += result.loss * length;
        if (!accumulated) accumulated = result.grads;
        else {
          const previous = accumulated;
          accumulated = previous.map((a, j) => tf.add(a, result.grads[j]!));
          tf.dispose([...previous, ...result.grads]);
        }
        x.dispose();
        x = xDst!;
        rawSrc -= length;
      }
    } finally {
      x.dispose();
      disposeParams(condition);
    }
    return { loss: total, grads: accumulated! };
  }

  /** Phase 1 (no tape): detached rollouts to the intermediate states and the teacher's velocities there. */
  private async collectStates(
    xSrc: tf.Tensor,
    sigmaSrc: tf.Tensor1D,
    rawSrc: Float64Array,
    rawLength: Float64Array,
    condition: Condition | undefined,
    teacherRatio: number,
    wantDestination: boolean,
  ): Promise<{ states: State[]; xDst?: tf.Tensor }> {
    const B = xSrc.shape[0]!;
    const { substeps, shift, numIntermediateStates: M } = this.o;
    const policyOptions = { ...this.student.policyOptions };
    const params = this.student.predict(xSrc, sigmaSrc, condition);
    let policy: Policy;
    try {
      const trainingOptions = this.family.training?.policyOptions(this.familyOptions, {
        random: this.random,
      });
      policy = this.family.create(params, xSrc, sigmaSrc, { ...policyOptions, ...trainingOptions });
    } finally {
      disposeParams(params);
    }
    const states: State[] = [];
    let x = xSrc.clone();
    try {
      const window = new Float64Array(B);
      const studentSteps: Float64Array[] = [];
      const teacherSteps: Float64Array[] = [];
      for (let k = 0; k < M; k++) {
        studentSteps.push(new Float64Array(B));
        teacherSteps.push(new Float64Array(B));
      }
      for (let b = 0; b < B; b++) {
        const n = substepCount(rawLength[b]!, substeps);
        window[b] = Math.min((this.o.windowSubsteps * rawLength[b]!) / n, rawLength[b]!);
        const offsets = intermediateOffsets(M, rawLength[b]! - window[b]!, teacherRatio, this.random);
        for (let k = 0; k < M; k++) {
          studentSteps[k]![b] = offsets.student[k]!;
          teacherSteps[k]![b] = offsets.teacher[k]!;
        }
      }
      const raw = Float64Array.from(rawSrc);
      let sigma = Float32Array.from(await sigmaSrc.data());
      for (let k = 0; k < M; k++) {
        const rawA = raw.map((r, b) => Math.max(r - studentSteps[k]![b]!, 0));
        const rawB = rawA.map((r, b) => Math.max(r - teacherSteps[k]![b]!, 0));
        const sigmaA = Float32Array.from(rawA, (r) => warp(Math.min(r, 1), shift));
        const xA = rolloutBetween(policy, x, sigma, sigmaA, substeps, shift);
        const sigmaATensor = tf.tensor1d(sigmaA);
        const target = await this.teacher.velocity(xA, sigmaATensor, condition);
        sigmaATensor.dispose();
        states.push({ x: xA, sigma: sigmaA, rawA, rawEnd: rawB.map((r, b) => r - window[b]!), target });
        const sigmaB = Float32Array.from(rawB, (r) => warp(Math.min(r, 1), shift));
        const next =
          teacherRatio > 0
            ? tf.tidy(() =>
                tf.add(
                  xA,
                  tf.mul(
                    target,
                    tf.tensor(
                      sigmaB.map((s, b) => s - sigmaA[b]!),
                      [B, ...new Array(xA.rank - 1).fill(1)],
                    ),
                  ),
                ),
              )
            : xA.clone();
        x.dispose();
        x = next;
        raw.set(rawB);
        sigma = sigmaB;
      }
      let xDst: tf.Tensor | undefined;
      if (wantDestination) {
        const sigmaDst = Float32Array.from(rawSrc, (r, b) =>
          warp(Math.min(Math.max(r - rawLength[b]!, 0), 1), shift),
        );
        xDst = rolloutBetween(policy, x, sigma, sigmaDst, substeps, shift);
      }
      return { states, xDst };
    } catch (error) {
      disposeStates(states);
      throw error;
    } finally {
      x.dispose();
      policy.dispose();
    }
  }

  /** Phase 2 (on the tape): the non-detached policy's (window-averaged) velocity vs the teacher's. */
  private async gradients(
    xSrc: tf.Tensor,
    sigmaSrc: tf.Tensor1D,
    condition: Condition | undefined,
    states: State[],
    weight: number,
  ): Promise<{ loss: number; grads: tf.Tensor[] }> {
    const variables = this.student.variables;
    const { substeps, shift, lossScale } = this.o;
    const policyOptions = { ...this.student.policyOptions };
    const weightOf = lossWeight(this.lossWeighting);
    const { value, grads } = tf.variableGrads(() => {
      const params = this.student.predict(xSrc, sigmaSrc, condition);
      const policy = this.family.create(params, xSrc, sigmaSrc, policyOptions);
      const perRow = states.map((s) => {
        const prediction = averageVelocity(policy, s, substeps, shift);
        const diff = tf.sub(prediction, s.target);
        const axes = Array.from({ length: diff.rank - 1 }, (_, i) => i + 1);
        const row = tf.mul(tf.mean(tf.square(diff), axes), 0.5);
        return this.lossWeighting === 'velocity' ? row : tf.mul(row, tf.tensor1d(s.sigma.map(weightOf)));
      });
      return tf.mul(tf.mean(tf.concat(perRow)), lossScale * weight) as tf.Scalar;
    }, variables as tf.Variable[]);
    // Read asynchronously: tfjs's WebGPU backend in Node has no synchronous readback.
    const loss = (await value.data())[0]! / weight;
    value.dispose();
    return { loss, grads: variables.map((v) => grads[v.name] ?? tf.zerosLike(v)) };
  }
}

/** Creates a π-ID trainer (see {@link PiIDTrainer}). */
export function createPiIDTrainer<P>(options: PiIDTrainerOptions<P>): PiIDTrainer<P> {
  return new PiIDTrainer(options);
}
