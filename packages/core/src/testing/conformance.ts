import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../errors';
import { hasFusedRolloutKernel } from '../fused-rollout';
import type { PolicyFamily } from '../policy-family';
import { createRandom, type Random } from '../random';
import { rollout } from '../rollout';
import type { Policy } from '../types';
import { testBackends, useBackend } from './backends';
import { FusedKernelSpy } from './kernel-spy';
import { countLeaks, readFloat32, readFloat64, relativeError } from './numerics';

type AnyFamily = PolicyFamily<any, any>;

export interface ReferenceInputs {
  /** Shape of x, [B, ...positions, C]. */
  shape: number[];
  xSrc: Float64Array;
  x: Float64Array;
  /** One per sample. */
  sigmaSrc: number[];
  sigma: number[];
}

export interface PolicyConformanceOptions {
  family: AnyFamily;
  /** Parameters as the family's student would output them for x of `shape` (the suite disposes them). */
  makeParams(shape: number[], random: Random): Record<string, unknown>;
  /** Options passed to `family.create`. */
  createOptions?: Record<string, unknown>;
  /**
   * Float64 reference velocity from parameter values (keys as in `makeParams`). Enables tight
   * finite-difference gradient checks; without it they run in float32 with a looser tolerance.
   */
  referenceVelocity?: (params: Record<string, Float64Array>, inputs: ReferenceInputs) => Float64Array;
  /** Backends to run on (default: testBackends()). */
  backends?: string[];
  /** Shapes of x to test (default [[3, 4], [2, 3, 3, 2]]). */
  shapes?: number[][];
  /** Tolerance of fused vs op-by-op rollouts (default 1e-4 relative). */
  fusedTolerance?: number;
}

function tensorKeys(params: Record<string, unknown>): string[] {
  return Object.keys(params).filter(
    (k) => params[k] instanceof tf.Tensor && (params[k] as tf.Tensor).dtype === 'float32',
  );
}

async function valuesOf(params: Record<string, unknown>): Promise<Record<string, Float64Array>> {
  const out: Record<string, Float64Array> = {};
  for (const k of tensorKeys(params)) out[k] = await readFloat64(params[k] as tf.Tensor);
  return out;
}

function randomSigmas(random: Random, batch: number, low: number, high: number): number[] {
  return Array.from({ length: batch }, () => low + (high - low) * random.uniform());
}

/**
 * The conformance suite every policy family (and every backend, for every family) reruns: shapes, no
 * tensor leaks, documented errors, σ edge cases, detach semantics, gradients against finite differences,
 * and fused-vs-op-by-op rollouts where the backend has a fused kernel.
 */
export function describePolicyConformance(options: PolicyConformanceOptions): void {
  const { family, makeParams, createOptions = {}, referenceVelocity } = options;
  const shapes = options.shapes ?? [
    [3, 4],
    [2, 3, 3, 2],
  ];
  for (const backend of options.backends ?? testBackends()) {
    describe(`policy family "${family.name}" conformance on ${backend}`, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      for (const shape of shapes) {
        const B = shape[0]!;
        const setup = (seed: number) => {
          const random = createRandom(seed);
          const params = makeParams(shape, random);
          const sigmaSrc = randomSigmas(random, B, 0.3, 1);
          const xSrc = random.normalTensor(shape);
          const sigma = sigmaSrc.map((s) => s * (0.1 + 0.85 * random.uniform()));
          const x = tf.tidy(() => tf.add(xSrc, tf.mul(random.normalTensor(shape), 0.3)));
          const dispose = () =>
            tf.dispose([...tensorKeys(params).map((k) => params[k] as tf.Tensor), xSrc, x]);
          return { random, params, sigmaSrc, sigma, xSrc, x, dispose };
        };

        it(`velocity has x's shape and dtype and is finite, shape [${shape}]`, async () => {
          const s = setup(1);
          const policy = family.create(s.params, s.xSrc, tf.tensor1d(s.sigmaSrc), createOptions);
          const u = policy.velocity(s.x, tf.tensor1d(s.sigma));
          expect(u.shape).toEqual(shape);
          expect(u.dtype).toBe('float32');
          expect(Array.from(await u.data()).every(Number.isFinite)).toBe(true);
          tf.dispose(u);
          policy.dispose();
          s.dispose();
        });

        it(`per-sample σ equals per-sample scalar evaluation, shape [${shape}]`, async () => {
          const s = setup(2);
          const policy = family.create(s.params, s.xSrc, tf.tensor1d(s.sigmaSrc), createOptions);
          const all = await readFloat32(policy.velocity(s.x, tf.tensor1d(s.sigma)));
          const per = shape.slice(1).reduce((a, b) => a * b, 1);
          for (let b = 0; b < B; b++) {
            const one = (await readFloat32(policy.velocity(s.x, s.sigma[b]!))).slice(b * per, (b + 1) * per);
            expect(relativeError(all.slice(b * per, (b + 1) * per), one)).toBeLessThan(1e-6);
          }
          policy.dispose();
          s.dispose();
        });

        it(`no tensor leaks in create / velocity / rollout / detach / dispose, shape [${shape}]`, () => {
          const s = setup(3);
          const sigmaSrc = tf.tensor1d(s.sigmaSrc);
          const { leaked, result } = countLeaks(() => {
            const policy = family.create(s.params, s.xSrc, sigmaSrc, createOptions);
            const u = policy.velocity(s.x, s.sigma[0]!);
            const detached = policy.detach();
            const u2 = tf.tidy(() => detached.velocity(s.x, tf.tensor1d(s.sigma)));
            const y = rollout(policy, s.xSrc, { sigmaSrc: 0.25, sigmaDst: 0, substeps: 16 });
            const yOp = rollout(policy, s.xSrc, { sigmaSrc: 0.25, sigmaDst: 0, substeps: 16, fused: false });
            detached.dispose();
            policy.dispose();
            return [u, u2, y, yOp];
          });
          expect(leaked).toBe(0);
          tf.dispose(result);
          sigmaSrc.dispose();
          s.dispose();
        });

        it(`detach gives the same velocity and no gradient, shape [${shape}]`, async () => {
          const s = setup(4);
          const key = tensorKeys(s.params)[0]!;
          const original = s.params[key] as tf.Tensor;
          // Both velocities are kept and compared after the gradient (reads inside it would be synchronous).
          const compared: tf.Tensor[] = [];
          const grads = tf.grad((p: tf.Tensor) => {
            const policy = family.create(
              { ...s.params, [key]: p },
              s.xSrc,
              tf.tensor1d(s.sigmaSrc),
              createOptions,
            );
            const detached = policy.detach();
            const a = policy.velocity(s.x, tf.tensor1d(s.sigma));
            const b = detached.velocity(s.x, tf.tensor1d(s.sigma));
            compared.push(tf.keep(a), tf.keep(b));
            // keep y connected to p (the tape needs a path) while the detached branch adds nothing
            return tf.add(tf.sum(b), tf.mul(tf.sum(p), 0));
          })(original);
          expect(relativeError(await compared[0]!.data(), await compared[1]!.data())).toBe(0);
          expect((await tf.max(tf.abs(grads)).data())[0]).toBe(0);
          tf.dispose(compared);
          grads.dispose();
          s.dispose();
        });

        it(`gradients match finite differences, shape [${shape}]`, async () => {
          const s = setup(5);
          const weights = s.random.normalTensor(shape);
          const sigmaSrcT = tf.tensor1d(s.sigmaSrc);
          const sigmaT = tf.tensor1d(s.sigma);
          const keys = tensorKeys(s.params);
          const gradientFn = tf.grads((...tensors: tf.Tensor[]) => {
            const p = { ...s.params };
            keys.forEach((k, i) => (p[k] = tensors[i]));
            const policy = family.create(p, s.xSrc, sigmaSrcT, createOptions);
            return tf.sum(tf.mul(policy.velocity(s.x, sigmaT), weights));
          });
          const grads = gradientFn(keys.map((k) => s.params[k] as tf.Tensor));
          const w = await readFloat32(weights);
          const inputs: ReferenceInputs = {
            shape,
            xSrc: await readFloat64(s.xSrc),
            x: await readFloat64(s.x),
            sigmaSrc: s.sigmaSrc,
            sigma: s.sigma,
          };
          const base = await valuesOf(s.params);
          const objective64 = (vals: Record<string, Float64Array>) => {
            const u = referenceVelocity!(vals, inputs);
            let acc = 0;
            for (let i = 0; i < u.length; i++) acc += u[i]! * w[i]!;
            return acc;
          };
          const objective32 = async (vals: Record<string, Float64Array>) => {
            const total = tf.tidy(() => {
              const p = { ...s.params };
              for (const k of keys)
                p[k] = tf.tensor(Float32Array.from(vals[k]!), (s.params[k] as tf.Tensor).shape);
              const policy = family.create(p, s.xSrc, sigmaSrcT, createOptions);
              return tf.sum(tf.mul(policy.velocity(s.x, sigmaT), weights));
            });
            const value = (await total.data())[0]!;
            total.dispose();
            return value;
          };
          for (const [i, key] of keys.entries()) {
            const g = await readFloat32(grads[i]!);
            const direction = s.random.fillNormal(new Float64Array(g.length));
            let analytic = 0;
            for (let j = 0; j < g.length; j++) analytic += g[j]! * direction[j]!;
            const h = referenceVelocity ? 1e-5 : 1e-2;
            const shifted = async (sign: number) => {
              const vals = { ...base, [key]: base[key]!.map((v, j) => v + sign * h * direction[j]!) };
              return referenceVelocity ? objective64(vals) : objective32(vals);
            };
            const numeric = ((await shifted(1)) - (await shifted(-1))) / (2 * h);
            const tolerance = referenceVelocity ? 2e-3 : 3e-2;
            expect(
              Math.abs(analytic - numeric),
              `∂/∂${key}: analytic ${analytic} vs numeric ${numeric}`,
            ).toBeLessThanOrEqual(tolerance * Math.max(Math.abs(numeric), 1e-3));
          }
          tf.dispose([...grads, weights, sigmaSrcT, sigmaT]);
          s.dispose();
        });

        if (referenceVelocity) {
          it(`velocity matches the float64 reference (≤ 1e-4 relative), shape [${shape}]`, async () => {
            const s = setup(6);
            const policy = family.create(s.params, s.xSrc, tf.tensor1d(s.sigmaSrc), createOptions);
            const u = policy.velocity(s.x, tf.tensor1d(s.sigma));
            const ref = referenceVelocity(await valuesOf(s.params), {
              shape,
              xSrc: await readFloat64(s.xSrc),
              x: await readFloat64(s.x),
              sigmaSrc: s.sigmaSrc,
              sigma: s.sigma,
            });
            expect(relativeError(await u.data(), ref)).toBeLessThan(1e-4);
            u.dispose();
            policy.dispose();
            s.dispose();
          });
        }

        it(`fused rollout (where the backend has one) runs and matches op by op (≤ 1e-4), shape [${shape}]`, async () => {
          const s = setup(7);
          const policy = family.create(s.params, s.xSrc, tf.tensor1d(s.sigmaSrc), createOptions);
          const sigmaDst = s.sigmaSrc.map((v, b) => (b === 0 ? 0 : v * 0.4));
          // A family that declares a fused kernel for this backend (its own, or one a backend package
          // registered) must actually run it here: count its runs.
          const kernel = family.fusedRollout;
          const spy =
            kernel && hasFusedRolloutKernel(kernel) ? new FusedKernelSpy(kernel, tf.getBackend()) : undefined;
          spy?.install();
          const fused = rollout(policy, s.xSrc, {
            sigmaSrc: tf.tensor1d(s.sigmaSrc),
            sigmaDst: tf.tensor1d(sigmaDst),
            substeps: 64,
            shift: 2,
          });
          const reference = rollout(policy, s.xSrc, {
            sigmaSrc: tf.tensor1d(s.sigmaSrc),
            sigmaDst: tf.tensor1d(sigmaDst),
            substeps: 64,
            shift: 2,
            fused: false,
          });
          spy?.uninstall();
          if (spy) expect(spy.runs, `runs of ${kernel!.kernelName} on ${tf.getBackend()}`).toBe(1);
          expect(fused.shape).toEqual(shape);
          expect(relativeError(await fused.data(), await reference.data())).toBeLessThan(
            options.fusedTolerance ?? 1e-4,
          );
          tf.dispose([fused, reference]);
          policy.dispose();
          s.dispose();
        });
      }

      it('bad input raises InvalidArgumentError naming the argument', () => {
        const shape = shapes[0]!;
        const s = (() => {
          const random = createRandom(8);
          return { params: makeParams(shape, random), xSrc: random.normalTensor(shape) };
        })();
        const before = tf.memory().numTensors;
        const expectInvalid = (fn: () => unknown, argument: RegExp) => {
          let error: unknown;
          try {
            fn();
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(InvalidArgumentError);
          expect((error as InvalidArgumentError).argument).toMatch(argument);
        };
        expectInvalid(() => family.create(s.params, s.xSrc, 0, createOptions), /^sigmaSrc/);
        expectInvalid(() => family.create(s.params, s.xSrc, 1.5, createOptions), /^sigmaSrc/);
        expectInvalid(() => family.create(s.params, s.xSrc, Number.NaN, createOptions), /^sigmaSrc/);
        expectInvalid(() => family.create(undefined as never, s.xSrc, 0.5, createOptions), /^params/);
        const wrongX = tf.zeros([shape[0]! + 1, ...shape.slice(1)]);
        expectInvalid(() => family.create(s.params, wrongX, 0.5, createOptions), /^params/);
        const intX = tf.zeros(shape, 'int32');
        expectInvalid(() => family.create(s.params, intX, 0.5, createOptions), /^xSrc/);
        const policy = family.create(s.params, s.xSrc, 0.5, createOptions);
        expectInvalid(() => policy.velocity(wrongX, 0.2), /^x$/);
        expectInvalid(() => policy.velocity(s.xSrc, -0.1), /^sigma/);
        expectInvalid(() => policy.velocity(s.xSrc, 1.2), /^sigma/);
        expectInvalid(() => policy.velocity(s.xSrc, tf.tensor1d([0.2])), /^sigma/);
        expectInvalid(() => rollout(policy, s.xSrc, { sigmaSrc: 0.5, sigmaDst: 0.6 }), /^sigmaDst/);
        expectInvalid(
          () => rollout(policy, s.xSrc, { sigmaSrc: 0.5, sigmaDst: 0, substeps: 0 }),
          /^substeps/,
        );
        policy.dispose();
        tf.dispose([wrongX, intX]);
        expect(tf.memory().numTensors - before).toBeLessThanOrEqual(1); // the stray [1] sigma tensor above
        tf.dispose([...tensorKeys(s.params).map((k) => s.params[k] as tf.Tensor), s.xSrc]);
      });
    });
  }
}

export type { Policy };
