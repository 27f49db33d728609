import {
  AdamW,
  addNoise,
  assertNumber,
  type Condition,
  createRandom,
  detachParams,
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
  runQueriesAsync,
  runQueriesSync,
  SyncUnavailableError,
  sigmaVector,
  substepCount,
  type Teacher,
  type TrainableStudent,
  warp,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { readLatestCheckpoint, type TrainingCheckpoint, writeCheckpointFile } from './checkpoint';
import { averageVelocity, disposeStates, rolloutBetween, type State, untaped } from './intermediate-states';
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
 * Implementation note: a gradient pass needs a synchronous function. A teacher that answers synchronously
 * (`velocitySync`) is queried inside it and the student runs once per segment; an asynchronous-only teacher
 * (remote) makes an iteration run in two phases: (1) no tape — student forward, detached rollouts, teacher
 * queries; (2) on the tape — the student forward again and the loss at the recorded states.
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
  /** False once the teacher's `velocitySync` threw SyncUnavailableError. */
  private teacherAnswersSync = true;
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
      const { loss, grads } = await this.segmentGradients(
        {
          xSrc,
          sigmaSrc,
          sigmaSrcValues: seg.sigmaSrc,
          rawSrc: seg.rawSrc,
          rawLength: seg.rawLength,
          condition: batch.condition,
        },
        teacherRatio,
        false,
        1,
      );
      return { loss, grads };
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
        let result: { loss: number; grads: tf.Tensor[]; xDst?: tf.Tensor };
        try {
          result = await this.segmentGradients(
            {
              xSrc: x,
              sigmaSrc,
              sigmaSrcValues: new Float32Array(B).fill(sigmaValue),
              rawSrc: new Float64Array(B).fill(rawSrc),
              rawLength: new Float64Array(B).fill(length),
              condition,
            },
            teacherRatio,
            true,
            length,
          );
        } finally {
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
        x = result.xDst!;
        rawSrc -= length;
      }
    } catch (error) {
      if (accumulated) tf.dispose(accumulated);
      throw error;
    } finally {
      x.dispose();
      disposeParams(condition);
    }
    return { loss: total, grads: accumulated! };
  }

  /**
   * One segment's loss and gradients: the student's policy at (x_src, σ_src), detached rollouts to the
   * intermediate states (fused kernels allowed), the teacher's velocities there, and the L2 loss of the
   * non-detached policy's (window-averaged) velocity against them; with `wantDestination`, also the detached
   * rollout's end x_dst.
   *
   * A teacher that answers synchronously (`velocitySync`: tfjs models, analytic flows) is queried inside the
   * gradient pass, off the tape (its velocity is a constant target), so the student runs once. Any other
   * teacher (remote ones) is awaited: the states are collected first without a tape, and the student runs
   * again on the tape for the loss.
   */
  private async segmentGradients(
    input: SegmentInput,
    teacherRatio: number,
    wantDestination: boolean,
    weight: number,
  ): Promise<{ loss: number; grads: tf.Tensor[]; xDst?: tf.Tensor }> {
    const { xSrc, sigmaSrc, condition } = input;
    const variables = this.student.variables as tf.Variable[];
    const velocitySync = this.teacherAnswersSync ? this.teacher.velocitySync?.bind(this.teacher) : undefined;
    let value: tf.Scalar | undefined;
    let grads: (tf.Tensor | undefined)[] = [];
    let xDst: tf.Tensor | undefined;
    const randomState = this.random.state();
    if (velocitySync) {
      try {
        ({ value, grads } = gradientsOf(() => {
          const params = this.student.predict(xSrc, sigmaSrc, condition);
          const policy = this.rolloutPolicy(detachParams(params), xSrc, sigmaSrc);
          const collected = runQueriesSync(
            this.intermediateStates(policy, input, teacherRatio, wantDestination, false),
            (queries) => {
              const call = joinQueries(queries, condition);
              try {
                return splitBatch(
                  untaped(() => velocitySync(call.x, call.sigma, call.condition), call.x),
                  queries.length,
                );
              } finally {
                call.dispose();
              }
            },
          );
          if (collected.xDst) xDst = tf.keep(collected.xDst);
          // everything else made here (states, rollouts, policies) is released when the pass ends
          return this.loss(params, xSrc, sigmaSrc, collected.states, weight);
        }, variables));
      } catch (error) {
        xDst?.dispose();
        xDst = undefined;
        if (!(error instanceof SyncUnavailableError)) throw error;
        // this teacher answers only asynchronously after all: from now on (and for this segment, with the
        // same random draws) the two-phase iteration
        this.teacherAnswersSync = false;
        this.random = Random.fromState(randomState);
      }
    }
    if (!value) {
      const params = this.student.predict(xSrc, sigmaSrc, condition);
      let policy: Policy;
      try {
        policy = this.rolloutPolicy(params, xSrc, sigmaSrc);
      } finally {
        disposeParams(params);
      }
      let collected: { states: State[]; xDst?: tf.Tensor };
      try {
        collected = await runQueriesAsync(
          this.intermediateStates(policy, input, teacherRatio, wantDestination, true),
          async (queries) => {
            const call = joinQueries(queries, condition);
            try {
              return splitBatch(
                await this.teacher.velocity(call.x, call.sigma, call.condition),
                queries.length,
              );
            } finally {
              call.dispose();
            }
          },
        );
      } finally {
        policy.dispose();
      }
      xDst = collected.xDst;
      try {
        ({ value, grads } = gradientsOf(
          () =>
            this.loss(
              this.student.predict(xSrc, sigmaSrc, condition),
              xSrc,
              sigmaSrc,
              collected.states,
              weight,
            ),
          variables,
        ));
      } catch (error) {
        xDst?.dispose();
        throw error;
      } finally {
        disposeStates(collected.states);
      }
    }
    // Read asynchronously: tfjs's WebGPU backend in Node has no synchronous readback.
    const loss = (await value!.data())[0]! / weight;
    value.dispose();
    return { loss, grads: variables.map((v, i) => grads[i] ?? tf.zerosLike(v)), xDst };
  }

  /** The policy the intermediate states are rolled out with (the family's training options, e.g. dropout). */
  private rolloutPolicy(params: P, xSrc: tf.Tensor, sigmaSrc: tf.Tensor1D): Policy {
    const trainingOptions = this.family.training?.policyOptions(this.familyOptions, { random: this.random });
    return this.family.create(params, xSrc, sigmaSrc, { ...this.student.policyOptions, ...trainingOptions });
  }

  /**
   * The detached rollouts to the intermediate states, as a generator that yields the teacher queries and is
   * resumed with the teacher's velocities (so one body serves the synchronous and the asynchronous teacher).
   * Without trajectory mixing (teacher ratio 0) no state depends on the teacher, and with `joinIndependent`
   * all of them are asked in one query (one request to a remote teacher instead of one per state; a local
   * teacher is asked state by state, which keeps one state's activations in memory at a time). The states'
   * tensors belong to the caller; the policy stays the caller's.
   */
  private *intermediateStates(
    policy: Policy,
    input: SegmentInput,
    teacherRatio: number,
    wantDestination: boolean,
    joinIndependent: boolean,
  ): Generator<TeacherQuery[], { states: State[]; xDst?: tf.Tensor }, tf.Tensor[]> {
    const { xSrc, rawSrc, rawLength } = input;
    const B = xSrc.shape[0]!;
    const { substeps, shift, numIntermediateStates: M } = this.o;
    const states: State[] = [];
    // rolled out, waiting for the teacher
    const pending: { x: tf.Tensor; sigma: Float32Array; rawA: Float64Array; rawEnd: Float64Array }[] = [];
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
      const ask = function* (): Generator<TeacherQuery[], void, tf.Tensor[]> {
        const sigmas = pending.map((p) => tf.tensor1d(p.sigma));
        let targets: tf.Tensor[];
        try {
          targets = yield pending.map((p, i) => ({ x: p.x, sigma: sigmas[i]! }));
        } finally {
          tf.dispose(sigmas);
        }
        pending.forEach((p, i) => states.push({ ...p, target: targets[i]! }));
        pending.length = 0;
      };
      const raw = Float64Array.from(rawSrc);
      let sigma = Float32Array.from(input.sigmaSrcValues);
      for (let k = 0; k < M; k++) {
        const rawA = raw.map((r, b) => Math.max(r - studentSteps[k]![b]!, 0));
        const rawB = rawA.map((r, b) => Math.max(r - teacherSteps[k]![b]!, 0));
        const sigmaA = Float32Array.from(rawA, (r) => warp(Math.min(r, 1), shift));
        const xA = rolloutBetween(policy, x, sigma, sigmaA, substeps, shift);
        pending.push({ x: xA, sigma: sigmaA, rawA, rawEnd: rawB.map((r, b) => r - window[b]!) });
        const sigmaB = Float32Array.from(rawB, (r) => warp(Math.min(r, 1), shift));
        let next: tf.Tensor;
        if (teacherRatio > 0 || !joinIndependent) yield* ask();
        if (teacherRatio > 0) {
          const target = states[states.length - 1]!.target;
          next = tf.tidy(() =>
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
          );
        } else next = xA.clone();
        x.dispose();
        x = next;
        raw.set(rawB);
        sigma = sigmaB;
      }
      if (pending.length > 0) yield* ask();
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
      tf.dispose(pending.map((p) => p.x));
      throw error;
    } finally {
      x.dispose();
    }
  }

  /** The π-ID loss: the non-detached policy's (window-averaged) velocity vs the teacher's, at each state. */
  private loss(
    params: P,
    xSrc: tf.Tensor,
    sigmaSrc: tf.Tensor1D,
    states: readonly State[],
    weight: number,
  ): tf.Scalar {
    const { substeps, shift, lossScale } = this.o;
    const weightOf = lossWeight(this.lossWeighting);
    const policy = this.family.create(params, xSrc, sigmaSrc, { ...this.student.policyOptions });
    const perRow = states.map((s) => {
      const prediction = averageVelocity(policy, s, substeps, shift);
      const diff = tf.sub(prediction, s.target);
      const axes = Array.from({ length: diff.rank - 1 }, (_, i) => i + 1);
      const row = tf.mul(tf.mean(tf.square(diff), axes), 0.5);
      return this.lossWeighting === 'velocity' ? row : tf.mul(row, tf.tensor1d(s.sigma.map(weightOf)));
    });
    return tf.mul(tf.mean(tf.concat(perRow)), lossScale * weight) as tf.Scalar;
  }
}

/** What one segment of π-ID starts from. */
interface SegmentInput {
  xSrc: tf.Tensor;
  sigmaSrc: tf.Tensor1D;
  /** σ_src per sample (the values of `sigmaSrc`, known without a readback). */
  sigmaSrcValues: Float32Array;
  rawSrc: Float64Array;
  rawLength: Float64Array;
  condition: Condition | undefined;
}

/** A teacher query of `intermediateStates`: x and σ (tensors the generator owns). */
interface TeacherQuery {
  x: tf.Tensor;
  sigma: tf.Tensor1D;
}

/** Teacher queries as one call: x, σ and the condition concatenated along the batch (one query: as is). */
function joinQueries(
  queries: readonly TeacherQuery[],
  condition: Condition | undefined,
): { x: tf.Tensor; sigma: tf.Tensor1D; condition: Condition | undefined; dispose(): void } {
  if (queries.length === 1) return { ...queries[0]!, condition, dispose() {} };
  const x = tf.concat(queries.map((q) => q.x));
  const sigma = tf.concat(queries.map((q) => q.sigma)) as tf.Tensor1D;
  const joined: Record<string, tf.Tensor> | undefined = condition && {};
  for (const [name, value] of Object.entries(condition ?? {})) {
    joined![name] = tf.concat(queries.map(() => value));
  }
  return {
    x,
    sigma,
    condition: joined,
    dispose: () => tf.dispose([x, sigma, ...Object.values(joined ?? {})]),
  };
}

/** The answer to joined queries split back into one tensor per query (the joined answer is disposed). */
function splitBatch(u: tf.Tensor, parts: number): tf.Tensor[] {
  if (parts === 1) return [u];
  const out = tf.split(u, parts, 0);
  u.dispose();
  return out;
}

/**
 * The loss f() and its gradients to `variables` (undefined where it does not depend on one), as
 * tf.variableGrads, except that an error thrown by f leaves no tensor behind: tfjs releases the tensors its
 * tape saved only in the backward pass, so the error is caught, the pass finished on a constant, and the
 * error rethrown.
 */
function gradientsOf(
  f: () => tf.Scalar,
  variables: tf.Variable[],
): { value: tf.Scalar; grads: (tf.Tensor | undefined)[] } {
  let failure: { error: unknown } | undefined;
  const { value, grads } = tf.engine().gradients(
    () => {
      try {
        return f();
      } catch (error) {
        failure = { error };
        return tf.scalar(0);
      }
    },
    variables,
    undefined,
    true,
  );
  if (failure) {
    tf.dispose([value, ...grads.filter((g) => g)]);
    throw failure.error;
  }
  if (grads.every((g) => !g)) {
    value.dispose();
    throw new PiflowError(
      "The π-ID loss does not depend on any of the student's variables: its predict() must compute the policy parameters from `variables`.",
    );
  }
  return { value, grads };
}

/** Creates a π-ID trainer (see {@link PiIDTrainer}). */
export function createPiIDTrainer<P>(options: PiIDTrainerOptions<P>): PiIDTrainer<P> {
  return new PiIDTrainer(options);
}
