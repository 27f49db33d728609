import {
  type Condition,
  createRandom,
  InvalidArgumentError,
  type Random,
  type Teacher,
  type TeacherMetadata,
} from '@piflow/core';
import { maxAbsDifference, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

export interface TeacherContractInputs {
  x: tf.Tensor;
  /** One σ per sample. */
  sigma: number[];
  condition?: Condition;
}

export interface TeacherContractOptions {
  /** Builds the teacher (called once per backend; disposed by the suite if it has dispose()). */
  create: () => Teacher | Promise<Teacher>;
  /**
   * The metadata the teacher must declare, exactly (layout, sample shape, shift, guidance, condition names,
   * description). Its `conditionNames` also decides which conditioning tests run.
   */
  metadata: TeacherMetadata;
  /** Inputs for one call of batch size `batch` (σ values strictly inside (0, 1)). */
  makeInputs: (batch: number, random: Random) => TeacherContractInputs;
  /**
   * Independent reference velocity for the inputs (float64 JS or another implementation). Without it, only
   * shapes and consistency are checked.
   */
  reference?: (inputs: TeacherContractInputs) => ArrayLike<number> | Promise<ArrayLike<number>>;
  /** Largest allowed |u − reference| (default 1e-4). */
  tolerance?: number;
  /** Backends to run on (default: testBackends()). */
  backends?: string[];
  /** Teachers that accept any trailing shape skip the wrong-channel check. */
  skipWrongShape?: boolean;
  /** Expected error class for bad arguments (default InvalidArgumentError). */
  errorClass?: new (
    ...args: never[]
  ) => Error;
  /**
   * Error class for an x whose shape the teacher can only refuse after asking elsewhere (e.g. a remote
   * teacher whose server checks the channel count). Default: `errorClass`.
   */
  shapeErrorClass?: new (
    ...args: never[]
  ) => Error;
}

function disposeInputs(inputs: TeacherContractInputs): void {
  tf.dispose([inputs.x, ...Object.values(inputs.condition ?? {})]);
}

/** Wrong-shape variant of x: one more channel (or one more position for rank-2 x's batch axis kept). */
function widen(x: tf.Tensor): tf.Tensor {
  const shape = [...x.shape];
  shape[shape.length - 1] = shape[shape.length - 1]! + 1;
  return tf.zeros(shape);
}

/**
 * The `Teacher` contract every adapter passes: velocities shaped like x, float32, equal for a number σ and a
 * [B] σ tensor, equal to an independent reference, no tensor leaks, inputs left alive, and
 * `InvalidArgumentError`s for mismatched shapes, σ outside [0, 1], NaN σ and missing conditioning.
 */
export function describeTeacherContract(name: string, options: TeacherContractOptions): void {
  const backends = options.backends ?? testBackends();
  const tolerance = options.tolerance ?? 1e-4;
  const ErrorClass = options.errorClass ?? InvalidArgumentError;
  const ShapeErrorClass = options.shapeErrorClass ?? ErrorClass;
  for (const backend of backends) {
    describe(`${name} — Teacher contract on ${backend}`, () => {
      let teacher: Teacher;
      beforeAll(async () => {
        await useBackend(backend);
        teacher = await options.create();
      });
      afterAll(() => teacher?.dispose?.());

      it('declares exactly the expected metadata', () => {
        expect(teacher.metadata).toEqual(options.metadata);
      });

      it('returns a float32 velocity of the shape of x, equal to the reference, without leaks', async () => {
        const inputs = options.makeInputs(3, createRandom(11));
        try {
          const before = tf.memory().numTensors;
          const sigma = tf.tensor1d(inputs.sigma);
          const u = await teacher.velocity(inputs.x, sigma, inputs.condition);
          sigma.dispose();
          expect(u.dtype).toBe('float32');
          expect(u.shape).toEqual(inputs.x.shape);
          expect(tf.memory().numTensors - before).toBe(1);
          const values = u.dataSync();
          for (const v of values) expect(Number.isFinite(v)).toBe(true);
          if (options.reference) {
            const reference = await options.reference(inputs);
            expect(maxAbsDifference(values, reference)).toBeLessThanOrEqual(tolerance);
          }
          u.dispose();
          // the inputs are still alive
          expect(inputs.x.isDisposed).toBe(false);
          for (const c of Object.values(inputs.condition ?? {})) expect(c.isDisposed).toBe(false);
        } finally {
          disposeInputs(inputs);
        }
      });

      it('gives the same answer for a number σ and a [B] σ tensor', async () => {
        const inputs = options.makeInputs(2, createRandom(12));
        const s = inputs.sigma[0]!;
        try {
          const a = await teacher.velocity(inputs.x, s, inputs.condition);
          const sigma = tf.tensor1d([s, s]);
          const b = await teacher.velocity(inputs.x, sigma, inputs.condition);
          expect(maxAbsDifference(a.dataSync(), b.dataSync())).toBeLessThanOrEqual(1e-6);
          tf.dispose([a, b, sigma]);
        } finally {
          disposeInputs(inputs);
        }
      });

      it('rejects σ outside [0, 1], NaN σ and σ tensors of the wrong length', async () => {
        const inputs = options.makeInputs(2, createRandom(13));
        try {
          const before = tf.memory().numTensors;
          for (const bad of [1.5, -0.1, Number.NaN]) {
            await expect(teacher.velocity(inputs.x, bad, inputs.condition)).rejects.toThrow(ErrorClass);
            await expect(teacher.velocity(inputs.x, bad, inputs.condition)).rejects.toThrow(/sigma/);
          }
          const wrongLength = tf.tensor1d([0.5, 0.5, 0.5]);
          await expect(teacher.velocity(inputs.x, wrongLength, inputs.condition)).rejects.toThrow(ErrorClass);
          wrongLength.dispose();
          expect(tf.memory().numTensors).toBe(before);
        } finally {
          disposeInputs(inputs);
        }
      });

      it.skipIf(options.skipWrongShape)('rejects x of the wrong shape', async () => {
        const inputs = options.makeInputs(2, createRandom(14));
        const wide = widen(inputs.x);
        try {
          await expect(teacher.velocity(wide, 0.5, inputs.condition)).rejects.toThrow(ShapeErrorClass);
          await expect(teacher.velocity(wide, 0.5, inputs.condition)).rejects.toThrow(/`x`|"x"/);
          const rankOne = tf.zeros([inputs.x.size]);
          await expect(teacher.velocity(rankOne, 0.5, inputs.condition)).rejects.toThrow(ErrorClass);
          rankOne.dispose();
        } finally {
          wide.dispose();
          disposeInputs(inputs);
        }
      });

      const names = options.metadata.conditionNames ?? [];
      if (names.length === 0)
        it('needs no conditioning: a call without a condition answers', async () => {
          const inputs = options.makeInputs(2, createRandom(15));
          try {
            const u = await teacher.velocity(inputs.x, 0.5);
            expect(u.shape).toEqual(inputs.x.shape);
            u.dispose();
          } finally {
            disposeInputs(inputs);
          }
        });

      if (names.length > 0)
        it('rejects missing conditioning and conditioning of another batch size', async () => {
          const inputs = options.makeInputs(2, createRandom(15));
          try {
            await expect(teacher.velocity(inputs.x, 0.5)).rejects.toThrow(ErrorClass);
            await expect(teacher.velocity(inputs.x, 0.5)).rejects.toThrow(/condition/);
            const partial = { ...inputs.condition };
            delete (partial as Record<string, tf.Tensor>)[names[0]!];
            await expect(teacher.velocity(inputs.x, 0.5, partial)).rejects.toThrow(
              new RegExp(`condition\\.${names[0]}`),
            );
            const first = inputs.condition![names[0]!]!;
            const wrongBatch = tf.concat([first, first], 0);
            await expect(
              teacher.velocity(inputs.x, 0.5, { ...inputs.condition, [names[0]!]: wrongBatch }),
            ).rejects.toThrow(ErrorClass);
            wrongBatch.dispose();
          } finally {
            disposeInputs(inputs);
          }
        });
    });
  }
}
