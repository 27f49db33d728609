import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAnalyticGMFlow } from '../analytic-gm-flow';
import { addNoise } from '../conventions';
import { InvalidArgumentError } from '../errors';
import { createRandom, type Random } from '../random';
import { rollout, rolloutOpByOp } from '../rollout';
import { unwarp, warp } from '../time-warp';
import type { Policy, PolicyFamily } from '../types';
import { testBackends, useBackend } from './backends';
import { countLeaks, relativeError } from './numerics';
import { dxVelocityReference } from './references';

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
  for (const k of tensorKeys(params)) out[k] = await float64Of(params[k] as tf.Tensor);
  return out;
}

/**
 * A tensor's values, read asynchronously: the suites also run on tfjs's WebGPU backend in Node (Dawn),
 * which cannot read GPU-resident values synchronously.
 */
async function float64Of(t: tf.Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

async function valuesOfTensor(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
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
          const all = await valuesOfTensor(policy.velocity(s.x, tf.tensor1d(s.sigma)));
          const per = shape.slice(1).reduce((a, b) => a * b, 1);
          for (let b = 0; b < B; b++) {
            const one = (await valuesOfTensor(policy.velocity(s.x, s.sigma[b]!))).slice(
              b * per,
              (b + 1) * per,
            );
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
          const w = await valuesOfTensor(weights);
          const inputs: ReferenceInputs = {
            shape,
            xSrc: await float64Of(s.xSrc),
            x: await float64Of(s.x),
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
            const g = await valuesOfTensor(grads[i]!);
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
              xSrc: await float64Of(s.xSrc),
              x: await float64Of(s.x),
              sigmaSrc: s.sigmaSrc,
              sigma: s.sigma,
            });
            expect(relativeError(await u.data(), ref)).toBeLessThan(1e-4);
            u.dispose();
            policy.dispose();
            s.dispose();
          });
        }

        it(`fused rollout (where the backend has one) matches op by op (≤ 1e-4), shape [${shape}]`, async () => {
          const s = setup(7);
          const policy = family.create(s.params, s.xSrc, tf.tensor1d(s.sigmaSrc), createOptions);
          const sigmaDst = s.sigmaSrc.map((v, b) => (b === 0 ? 0 : v * 0.4));
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

export interface GMOracleOptions {
  /** The GM family (it must accept x0-space params { space: 'x0', means, logweights, variance }). */
  family: AnyFamily;
  backends?: string[];
  /** Tolerance (default 1e-4 relative, float32). */
  tolerance?: number;
}

const oracleMixtures = [
  { label: '2-D, 8 components', C: 2, K: 8, std: 0.15 },
  { label: '16-D, 12 components', C: 16, K: 12, std: 0.4 },
];

function makeMixture(C: number, K: number, std: number, random: Random) {
  const means = Array.from({ length: K }, () => Array.from({ length: C }, () => 2 * random.normal()));
  const raw = Array.from({ length: K }, () => 0.2 + random.uniform());
  const total = raw.reduce((a, b) => a + b, 0);
  return createAnalyticGMFlow({ means, std, weights: raw.map((w) => w / total) });
}

/**
 * The oracle property: for Gaussian-mixture data, the exact x0-posterior at (x_src, σ_src) is a GM, and the
 * GM policy built from it reproduces the exact velocity at every (x, σ ≤ σ_src), so a 1-step rollout equals
 * the teacher's own ODE rollout with the same substeps.
 */
export function describeGMOracleConformance(options: GMOracleOptions): void {
  const { family, tolerance = 1e-4 } = options;
  for (const backend of options.backends ?? testBackends()) {
    describe(`GM oracle on ${backend}`, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });
      for (const { label, C, K, std } of oracleMixtures) {
        it(`policy from the exact posterior gives the exact velocity below σ_src (${label})`, async () => {
          const random = createRandom(11 + C);
          const flow = makeMixture(C, K, std, random);
          const B = 64;
          for (const sigmaSrcValue of [1, 0.8, 0.35]) {
            const { x0 } = flow.sample(B, random);
            const noise = random.normalTensor([B, C]);
            const xSrc = addNoise(x0, noise, sigmaSrcValue);
            const posterior = flow.posterior(xSrc, sigmaSrcValue);
            const policy = family.create(posterior, xSrc, sigmaSrcValue);
            // random (x, σ) below σ_src: points on the forward process of the same x0, plus off-trajectory points
            const sigma = Array.from(
              { length: B },
              (_, b) => sigmaSrcValue * (b === 0 ? 1 : b === 1 ? 0 : random.uniform()),
            );
            const sigmaT = tf.tensor1d(sigma);
            // Its own σ tensor: tfjs's WebGPU backend drops a tensor's JS values once an op has used it, and
            // velocity() reads σ synchronously to validate it (which Node's WebGPU cannot do from the GPU).
            const onPath = tf.tidy(() => addNoise(x0, random.normalTensor([B, C]), tf.tensor1d(sigma)));
            const offPath = tf.add(onPath, random.normalTensor([B, C]));
            for (const x of [onPath, offPath]) {
              const u = policy.velocity(x, sigmaT);
              const exact = flow.velocityFloat64(await x.data(), sigma);
              expect(relativeError(await u.data(), exact)).toBeLessThan(tolerance);
              u.dispose();
            }
            policy.dispose();
            tf.dispose([
              x0,
              noise,
              xSrc,
              posterior.means,
              posterior.logweights,
              posterior.variance,
              sigmaT,
              onPath,
              offPath,
            ]);
          }
        });

        it(`1-step rollout from σ = 1 to 0 equals the teacher's rollout with the same substeps (${label})`, async () => {
          const random = createRandom(21 + C);
          const flow = makeMixture(C, K, std, random);
          const noise = random.normalTensor([128, C]);
          const posterior = flow.posterior(noise, 1);
          const policy = family.create(posterior, noise, 1);
          for (const shift of [1, 3.2]) {
            const student = rollout(policy, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 128, shift });
            const teacher = rolloutOpByOp(flow, noise, {
              sigmaSrc: new Float32Array(128).fill(1),
              sigmaDst: new Float32Array(128),
              substeps: 128,
              shift,
            });
            expect(relativeError(await student.data(), await teacher.data())).toBeLessThan(tolerance);
            tf.dispose([student, teacher]);
          }
          policy.dispose();
          tf.dispose([noise, posterior.means, posterior.logweights, posterior.variance]);
        });
      }
    });
  }
}

export interface DXConformanceOptions {
  family: AnyFamily;
  backends?: string[];
}

/** DX semantics: exact at grid nodes, linear between, clamped outside; polynomial mode vs direct evaluation. */
export function describeDXConformance(options: DXConformanceOptions): void {
  const { family } = options;
  for (const backend of options.backends ?? testBackends()) {
    describe(`DX semantics on ${backend}`, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });
      const B = 2;
      const N = 6;
      const shape = [B, 3, 2];
      const shift = 2.5;
      const segmentSize = 0.3;
      const make = (seed: number) => {
        const random = createRandom(seed);
        const x0Grid = random.normalTensor([B, N, ...shape.slice(1)]);
        const xSrc = random.normalTensor(shape);
        return { random, x0Grid, xSrc };
      };
      const D = 6;

      it('is exact at grid nodes and linear between them', async () => {
        const { x0Grid, xSrc } = make(1);
        const sigmaSrc = [0.9, 0.2]; // the second segment is clipped at raw time 0
        const policy = family.create({ space: 'x0', x0Grid }, xSrc, tf.tensor1d(sigmaSrc), {
          shift,
          segmentSize,
          mode: 'grid',
        });
        const grid = await x0Grid.data();
        const x = xSrc;
        const xv = await x.data();
        for (let n = 0; n < N; n++) {
          for (const half of [0, 0.5]) {
            if (n + half > N - 1) continue;
            const sigma = sigmaSrc.map((ss) => {
              const rSrc = unwarp(ss, shift);
              const rDst = Math.max(rSrc - segmentSize, 0);
              return warp(rDst + ((n + half) / (N - 1)) * (rSrc - rDst), shift);
            });
            const u = await valuesOfTensor(policy.velocity(x, tf.tensor1d(sigma)));
            for (let b = 0; b < B; b++) {
              for (let i = 0; i < D; i++) {
                const at = (m: number) => grid[(b * N + m) * D + i]!;
                const expected = half === 0 ? at(n) : 0.5 * (at(n) + at(n + 1));
                const scale = Math.max(sigma[b]!, 1e-4); // u = (x − x0)/max(σ, eps)
                const x0 = xv[b * D + i]! - scale * u[b * D + i]!;
                expect(Math.abs(x0 - expected)).toBeLessThan(1e-5 * (1 + Math.abs(xv[b * D + i]!)));
              }
            }
          }
        }
        policy.dispose();
        tf.dispose([x0Grid, xSrc]);
      });

      it('clamps to the end values outside the segment and matches the float64 reference', async () => {
        const { x0Grid, xSrc, random } = make(2);
        const sigmaSrc = [0.95, 0.6];
        for (const mode of ['grid', 'polynomial'] as const) {
          const policy = family.create({ space: 'x0', x0Grid }, xSrc, tf.tensor1d(sigmaSrc), {
            shift,
            segmentSize,
            mode,
          });
          for (const sigma of [[0.01, 0.005], sigmaSrc, [random.uniform() * 0.9, random.uniform() * 0.6]]) {
            const x = tf.tidy(() => tf.add(xSrc, random.normalTensor(shape)));
            const u = await valuesOfTensor(policy.velocity(x, tf.tensor1d(sigma)));
            const ref = dxVelocityReference({
              x0Grid: await x0Grid.data(),
              x: await x.data(),
              sigmaSrc,
              sigma,
              B,
              N,
              mode,
              shift,
              segmentSize,
              eps: 1e-4,
            });
            expect(relativeError(u, ref)).toBeLessThan(1e-4);
            x.dispose();
          }
          policy.dispose();
        }
        tf.dispose([x0Grid, xSrc]);
      });

      it('u-space parameters convert with x0 = x_src − σ_src·u for every entry', async () => {
        const { x0Grid: uGrid, xSrc } = make(3);
        const sigmaSrc = 0.7;
        const fromU = family.create({ space: 'u', uGrid }, xSrc, sigmaSrc, {
          shift,
          segmentSize,
          mode: 'polynomial',
        });
        const x0Grid = tf.tidy(() => tf.sub(tf.expandDims(xSrc, 1), tf.mul(sigmaSrc, uGrid)));
        const fromX0 = family.create({ space: 'x0', x0Grid }, xSrc, sigmaSrc, {
          shift,
          segmentSize,
          mode: 'polynomial',
        });
        const a = fromU.velocity(xSrc, 0.3);
        const b = fromX0.velocity(xSrc, 0.3);
        expect(relativeError(await a.data(), await b.data())).toBeLessThan(1e-6);
        tf.dispose([a, b, uGrid, xSrc, x0Grid]);
        fromU.dispose();
        fromX0.dispose();
      });
    });
  }
}

export type { Policy };
