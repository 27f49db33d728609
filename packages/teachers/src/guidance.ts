import {
  assertNumber,
  assertTensor,
  type Condition,
  describeValue,
  InvalidArgumentError,
  isTensor,
  type Random,
  runQueriesAsync,
  runQueriesSync,
  type Sigma,
  sigmaValues,
  type Teacher,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { assertCondition } from './teacher-inputs';

export interface ClassifierFreeGuidanceOptions {
  /** Guidance scale g ≥ 0: u = u_uncond + g·(u_cond − u_uncond) (g = 1: the conditional teacher). */
  guidanceScale: number;
  /**
   * σ interval [low, high] where guidance applies; elsewhere the conditional velocity is returned
   * (g = 1). Default [0, 1] (everywhere).
   */
  interval?: readonly [number, number];
  /**
   * The unconditional inputs: a function of the condition (e.g. swapping in negative prompt embeddings),
   * or a Condition with batch size 1 that is repeated over the batch (e.g. the null label or empty-prompt
   * embeddings). Required.
   */
  unconditional: Condition | ((condition: Condition) => Condition);
  /**
   * Evaluate conditional and unconditional inputs in one batched teacher call of size 2B (default true),
   * or in two calls of size B.
   */
  batched?: boolean;
}

/** One call of the wrapped teacher. */
interface TeacherCall {
  x: tf.Tensor;
  sigma: Sigma;
  condition: Condition | undefined;
}

function tileToBatch(condition: Condition, batch: number): Condition {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, value] of Object.entries(condition)) {
    assertTensor(`unconditional.${name}`, value, { minRank: 1, dtype: value.dtype });
    if (value.shape[0] === batch) out[name] = value.clone();
    else if (value.shape[0] === 1) out[name] = tf.tile(value, [batch, ...new Array(value.rank - 1).fill(1)]);
    else {
      throw new InvalidArgumentError(
        `unconditional.${name}`,
        `a tensor with batch size 1 or ${batch}`,
        describeValue(value),
      );
    }
  }
  return out;
}

/**
 * Classifier-free guidance around any teacher: u = u_c + (g − 1)·(u_c − u_u) inside the σ interval, u_c
 * outside it (per sample when σ is a [B] tensor). The conditional and unconditional passes go through the
 * wrapped teacher in one batched call of 2B by default.
 */
export function withClassifierFreeGuidance(
  teacher: Teacher,
  options: ClassifierFreeGuidanceOptions,
): Teacher {
  if (!teacher || typeof teacher.velocity !== 'function') {
    throw new InvalidArgumentError('teacher', 'a Teacher', describeValue(teacher));
  }
  if (options !== null && typeof options === 'object' && 'scale' in options) {
    throw new InvalidArgumentError(
      'options.scale',
      'options.guidanceScale (scale was renamed to guidanceScale)',
      describeValue((options as { scale: unknown }).scale),
    );
  }
  const { guidanceScale: scale, interval = [0, 1], unconditional, batched = true } = options;
  assertNumber('guidanceScale', scale, { min: 0 });
  if (!Array.isArray(interval) || interval.length !== 2) {
    throw new InvalidArgumentError('interval', 'a pair [low, high] of σ values', describeValue(interval));
  }
  assertNumber('interval[0]', interval[0], { min: 0, max: 1 });
  assertNumber('interval[1]', interval[1], { min: interval[0], max: 1 });
  if (typeof unconditional !== 'function' && (typeof unconditional !== 'object' || unconditional === null)) {
    throw new InvalidArgumentError(
      'unconditional',
      'a Condition or a function (condition) => Condition',
      describeValue(unconditional),
    );
  }
  const names = teacher.metadata.conditionNames ?? [];
  const metadata = {
    ...teacher.metadata,
    guidance: 'cfg' as const,
    description: `${teacher.metadata.description ?? 'teacher'} with CFG ${scale} on σ ∈ [${interval[0]}, ${interval[1]}]`,
  };

  // One body for both answers: it yields each call of the wrapped teacher and is resumed with its velocity.
  function* guided(
    x: tf.Tensor,
    sigma: Sigma,
    condition: Condition | undefined,
  ): Generator<TeacherCall, tf.Tensor, tf.Tensor> {
    assertTensor('x', x, { minRank: 2 });
    const batch = x.shape[0]!;
    if (condition === undefined) {
      throw new InvalidArgumentError(
        'condition',
        'the conditional inputs (classifier-free guidance needs a condition)',
        'undefined',
      );
    }
    assertCondition(condition, names, batch);
    const sigmas = sigmaValues(sigma as Sigma, batch);
    const gains = Float32Array.from(sigmas, (s) => (s >= interval[0] && s <= interval[1] ? scale : 1));
    if (gains.every((g) => g === 1)) return yield { x, sigma, condition };
    const uncond =
      typeof unconditional === 'function'
        ? unconditional(condition)
        : tf.tidy(() => tileToBatch(unconditional, batch));
    const ownsUncond = typeof unconditional !== 'function';
    try {
      assertCondition(uncond, names, batch);
      let uCond: tf.Tensor;
      let uUncond: tf.Tensor;
      if (batched) {
        const x2 = tf.concat([x, x], 0);
        const s2 = isTensor(sigma) ? tf.concat([sigma, sigma], 0) : sigma;
        const c2: Record<string, tf.Tensor> = {};
        for (const name of Object.keys(condition)) {
          if (uncond[name]) c2[name] = tf.concat([condition[name]!, uncond[name]!], 0);
        }
        try {
          const both = yield { x: x2, sigma: s2 as Sigma, condition: c2 };
          [uCond, uUncond] = tf.split(both, 2, 0) as [tf.Tensor, tf.Tensor];
          both.dispose();
        } finally {
          tf.dispose([x2, ...Object.values(c2)]);
          if (s2 !== sigma) (s2 as tf.Tensor).dispose();
        }
      } else {
        uCond = yield { x, sigma, condition };
        uUncond = yield { x, sigma, condition: uncond };
      }
      const out = tf.tidy(() => {
        const g = tf.tensor(gains, [batch, ...new Array<number>(x.rank - 1).fill(1)]);
        return tf.add(uCond, tf.mul(tf.sub(g, 1), tf.sub(uCond, uUncond)));
      });
      tf.dispose([uCond, uUncond]);
      return out;
    } finally {
      if (ownsUncond) tf.dispose(Object.values(uncond));
    }
  }
  const velocitySync = teacher.velocitySync?.bind(teacher);
  return {
    metadata,
    dispose: teacher.dispose?.bind(teacher),
    velocity: (x, sigma, condition) =>
      runQueriesAsync(guided(x, sigma, condition), (q) => teacher.velocity(q.x, q.sigma, q.condition)),
    ...(velocitySync && {
      velocitySync: (x: tf.Tensor, sigma: Sigma, condition?: Condition) =>
        runQueriesSync(guided(x, sigma, condition), (q) => velocitySync(q.x, q.sigma, q.condition)),
    }),
  };
}

export interface ConditionDropoutOptions {
  /** Probability of replacing each sample's condition by the null condition, in [0, 1]. */
  probability: number;
  /** The null condition: batch size 1 (repeated) or B, the same names as `condition`. */
  nullCondition: Condition;
  /** Source of the per-sample coin flips. */
  random: Random;
}

/**
 * The training convention for classifier-free guidance: each sample's condition is replaced by the null
 * condition with probability p (the same flip for every named input of that sample). Returns the new
 * condition and the mask (1 = dropped); the input condition is not disposed.
 */
export function dropCondition(
  condition: Condition,
  options: ConditionDropoutOptions,
): { condition: Condition; dropped: Uint8Array } {
  const { probability, nullCondition, random } = options;
  assertNumber('probability', probability, { min: 0, max: 1 });
  if (!random || typeof random.uniform !== 'function') {
    throw new InvalidArgumentError('random', 'a Random (createRandom(seed))', describeValue(random));
  }
  const names = Object.keys(condition ?? {});
  if (names.length === 0) {
    throw new InvalidArgumentError(
      'condition',
      'a Condition with at least one tensor',
      describeValue(condition),
    );
  }
  const batch = condition[names[0]!]!.shape[0]!;
  assertCondition(condition, names, batch);
  for (const name of names) {
    if (!isTensor(nullCondition?.[name])) {
      throw new InvalidArgumentError(
        `nullCondition.${name}`,
        'a tensor (one per name of condition)',
        'nothing',
      );
    }
  }
  const dropped = new Uint8Array(batch);
  for (let b = 0; b < batch; b++) dropped[b] = random.uniform() < probability ? 1 : 0;
  const out = tf.tidy(() => {
    const nulls = tileToBatch(Object.fromEntries(names.map((n) => [n, nullCondition[n]!])), batch);
    const result: Record<string, tf.Tensor> = {};
    for (const name of names) {
      const value = condition[name]!;
      const nullValue = nulls[name]!;
      if (
        nullValue.dtype !== value.dtype ||
        nullValue.shape.slice(1).join() !== value.shape.slice(1).join()
      ) {
        throw new InvalidArgumentError(
          `nullCondition.${name}`,
          `a ${value.dtype} tensor of per-sample shape [${value.shape.slice(1).join(', ')}]`,
          describeValue(nullCondition[name]),
        );
      }
      const mask = tf.tensor(dropped, [batch, ...new Array<number>(value.rank - 1).fill(1)], 'bool');
      result[name] = tf.where(tf.broadcastTo(mask, value.shape), nullValue, value);
    }
    return result;
  });
  return { condition: out, dropped };
}
