import { createRandom, InvalidArgumentError, type Random, rollout } from '@piflow/core';
import { describePolicyConformance, relativeError, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  componentDropMask,
  createGMFamily,
  gm,
  gmMean,
  sampleGaussianMixture,
  sampleGaussianMixtureAsync,
} from './index';
import { describeGMOracleConformance, gmUParams, gmUSpaceReference, gmX0Params } from './testing';

const K = 3;

const randomUParams = (shape: number[], random: Random) => gmUParams(shape, random, K);

describePolicyConformance({ family: gm, makeParams: randomUParams, referenceVelocity: gmUSpaceReference(K) });

describePolicyConformance({ family: gm, makeParams: (shape, random) => gmX0Params(shape, random, K) });

describeGMOracleConformance({ family: gm });

for (const backend of testBackends()) {
  describe(`GM family specifics on ${backend}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('u-space and x0-space parameters give the same policy', () => {
      const random = createRandom(3);
      const shape = [4, 5, 3];
      const u = randomUParams(shape, random);
      const xSrc = random.normalTensor(shape);
      const sigmaSrc = 0.6;
      const x0 = {
        space: 'x0' as const,
        means: tf.tidy(() => tf.sub(tf.expandDims(xSrc, -2), tf.mul(sigmaSrc, u.means))),
        logweights: u.logweights,
        variance: tf.tidy(() => tf.mul(tf.exp(tf.mul(u.logstd, 2)), sigmaSrc * sigmaSrc)) as tf.Tensor1D,
      };
      const a = gm.create(u, xSrc, sigmaSrc);
      const b = gm.create(x0, xSrc, sigmaSrc);
      const ua = a.velocity(xSrc, 0.2);
      const ub = b.velocity(xSrc, 0.2);
      expect(relativeError(ua.dataSync(), ub.dataSync())).toBeLessThan(1e-5);
      tf.dispose([ua, ub, u.means, u.logweights, u.logstd, x0.means, x0.variance, xSrc]);
      a.dispose();
      b.dispose();
    });

    it('at (x_src, σ_src) the velocity is (x_src − mixture mean)/σ_src', () => {
      const random = createRandom(4);
      const shape = [3, 2, 4];
      const u = randomUParams(shape, random);
      const xSrc = random.normalTensor(shape);
      const policy = gm.create(u, xSrc, 0.7);
      const mean = gmMean(policy.toX0Params());
      const expected = tf.tidy(() => tf.div(tf.sub(xSrc, mean), 0.7));
      const v = policy.velocity(xSrc, 0.7);
      expect(relativeError(v.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
      tf.dispose([mean, expected, v, u.means, u.logweights, u.logstd, xSrc]);
      policy.dispose();
    });

    it('temperature sharpens weights (softmax(logw/T)) and scales the variance by T; T ≥ 1 is a no-op', () => {
      const random = createRandom(5);
      const shape = [2, 3];
      const u = randomUParams(shape, random);
      const xSrc = random.normalTensor(shape);
      const plain = gm.create(u, xSrc, 0.8);
      const hot = gm.create(u, xSrc, 0.8, { temperature: 0.3 });
      const one = gm.create(u, xSrc, 0.8, { temperature: 1 });
      // log-weights are kept as given (normalised on use): compare the mixture weights they stand for
      const expectedWeights = tf.tidy(() => tf.softmax(tf.div(u.logweights, 0.3)));
      const hotWeights = tf.tidy(() => tf.softmax(hot.logweights));
      expect(relativeError(hotWeights.dataSync(), expectedWeights.dataSync())).toBeLessThan(1e-6);
      expect(relativeError(plain.logweights.dataSync(), u.logweights.dataSync())).toBe(0);
      expect(
        relativeError(
          hot.variance.dataSync(),
          plain.variance.dataSync().map((v) => v * 0.3),
        ),
      ).toBeLessThan(1e-6);
      expect(relativeError(one.logweights.dataSync(), plain.logweights.dataSync())).toBe(0);
      tf.dispose([expectedWeights, hotWeights, u.means, u.logweights, u.logstd, xSrc]);
      [plain, hot, one].forEach((p) => p.dispose());
    });

    it('normalises log-weights on use: a constant per position changes neither velocity nor rollout', () => {
      const random = createRandom(9);
      const shape = [2, 5, 3];
      const u = randomUParams(shape, random);
      const xSrc = random.normalTensor(shape);
      // tens to over a hundred per position: exp() of them would overflow float32 without normalising
      const shifted = tf.tidy(() => tf.add(u.logweights, tf.mul(random.normalTensor([2, 5, 1]), 60)));
      for (const temperature of [1, 0.4]) {
        const plain = gm.create(u, xSrc, 0.9, { temperature });
        const moved = gm.create({ ...u, logweights: shifted }, xSrc, 0.9, { temperature });
        const [v1, v2] = [plain, moved].map((p) => p.velocity(xSrc, 0.5));
        expect(relativeError(v2!.dataSync(), v1!.dataSync())).toBeLessThan(1e-5);
        for (const fused of [true, false]) {
          const [r1, r2] = [plain, moved].map((p) =>
            rollout(p, xSrc, { sigmaSrc: 0.9, sigmaDst: 0.2, substeps: 32, fused }),
          );
          expect(relativeError(r2!.dataSync(), r1!.dataSync()), `fused ${fused}`).toBeLessThan(1e-5);
          tf.dispose([r1!, r2!]);
        }
        tf.dispose([v1!, v2!]);
        plain.dispose();
        moved.dispose();
      }
      tf.dispose([shifted, u.means, u.logweights, u.logstd, xSrc]);
    });

    it('dropout removes components per sample (shared over positions) but never all of them', () => {
      const random = createRandom(6);
      const mask = componentDropMask(2000, 3, 0.5, random);
      let dropped = 0;
      for (let b = 0; b < 2000; b++) {
        const row = mask.slice(b * 3, b * 3 + 3);
        expect(row.reduce((a, v) => a + v, 0)).toBeLessThan(3);
        dropped += row.reduce((a, v) => a + v, 0);
      }
      // P(drop) = 0.5 with all-dropped rows (prob 1/8) reset: expected 3·0.5 − 3/8 = 1.125 per row
      expect(dropped / 2000).toBeGreaterThan(1.05);
      expect(dropped / 2000).toBeLessThan(1.2);
      const shape = [2, 4, 3];
      const u = randomUParams(shape, random);
      const xSrc = random.normalTensor(shape);
      const policy = gm.create(u, xSrc, 0.9, { dropout: 0.6, random: createRandom(7) });
      const logw = policy.logweights.dataSync();
      for (let p = 0; p < 8; p++) {
        const row = Array.from(logw.slice(p * K, p * K + K));
        expect(row.some(Number.isFinite)).toBe(true);
        const sample = Math.floor(p / 4);
        const first = Array.from(logw.slice(sample * 4 * K, sample * 4 * K + K)).map(Number.isFinite);
        expect(row.map(Number.isFinite)).toEqual(first);
      }
      const v = policy.velocity(xSrc, 0.3);
      expect(Array.from(v.dataSync()).every(Number.isFinite)).toBe(true);
      expect(() => gm.create(u, xSrc, 0.9, { dropout: 0.2 })).toThrow(InvalidArgumentError);
      expect(() => gm.create(u, xSrc, 0.9, { dropout: 1 })).toThrow(/dropout/);
      tf.dispose([v, u.means, u.logweights, u.logstd, xSrc]);
      policy.dispose();
    });

    it('samples x0 from the mixture: weights, means, variances and one component per position (≤ 4 SE)', () => {
      const random = createRandom(8);
      const n = 20000;
      const mu = [
        [-2, 0],
        [3, 1],
      ];
      const w = [0.25, 0.75];
      const v0 = 0.09;
      const means = tf.tensor(mu.flat(), [1, 1, 2, 2]);
      const tiled = tf.tile(means, [n, 1, 1, 1]);
      const logweights = tf.tile(tf.log(tf.tensor(w, [1, 1, 2])), [n, 1, 1]);
      const variance = tf.fill([n], v0) as tf.Tensor1D;
      const x0 = sampleGaussianMixture({ space: 'x0', means: tiled, logweights, variance }, random);
      const v = x0.dataSync();
      // exact moments of the mixture, per channel: mean, variance and fourth central moment
      const moments = [0, 1].map((c) => {
        const mean = w[0]! * mu[0]![c]! + w[1]! * mu[1]![c]!;
        const variance = v0 + w.reduce((a, wk, k) => a + wk * (mu[k]![c]! - mean) ** 2, 0);
        const fourth = w.reduce((a, wk, k) => {
          const d = mu[k]![c]! - mean;
          return a + wk * (d ** 4 + 6 * d * d * v0 + 3 * v0 * v0);
        }, 0);
        return { mean, variance, fourth };
      });
      for (const c of [0, 1]) {
        const { mean, variance, fourth } = moments[c]!;
        let m = 0;
        for (let i = 0; i < n; i++) m += v[2 * i + c]! / n;
        let s2 = 0;
        for (let i = 0; i < n; i++) s2 += (v[2 * i + c]! - m) ** 2 / (n - 1);
        expect(Math.abs(m - mean), `mean of channel ${c}`).toBeLessThan(4 * Math.sqrt(variance / n));
        expect(Math.abs(s2 - variance), `variance of channel ${c}`).toBeLessThan(
          4 * Math.sqrt((fourth - variance ** 2) / n),
        );
      }
      // weights: the modes are 5 apart in channel 0 (17 std), so x > 0.5 there means component 1
      let inSecond = 0;
      let channel1InSecond = 0;
      for (let i = 0; i < n; i++) {
        if (v[2 * i]! > 0.5) {
          inSecond++;
          channel1InSecond += v[2 * i + 1]!;
        }
      }
      expect(Math.abs(inSecond / n - w[1]!)).toBeLessThan(4 * Math.sqrt((w[0]! * w[1]!) / n));
      // one component per position: channel 1 of the samples drawn from component 1 centres on its mean 1
      // (drawing the channels' components independently would centre it on the mixture mean 0.75)
      expect(Math.abs(channel1InSecond / inSecond - mu[1]![1]!)).toBeLessThan(4 * Math.sqrt(v0 / inSecond));
      tf.dispose([means, tiled, logweights, variance, x0]);
    });

    it('sampleGaussianMixtureAsync draws the same samples from the same random state', async () => {
      const random = createRandom(4);
      const params = {
        space: 'x0' as const,
        means: random.normalTensor([3, 5, 4, 2]),
        logweights: random.normalTensor([3, 5, 4]),
        variance: tf.tensor1d([0.1, 0.2, 0.3]),
      };
      const sync = sampleGaussianMixture(params, createRandom(11));
      const viaAsync = await sampleGaussianMixtureAsync(params, createRandom(11));
      expect(viaAsync.shape).toEqual([3, 5, 2]);
      expect(Array.from(await viaAsync.data())).toEqual(Array.from(await sync.data()));
      tf.dispose([sync, viaAsync, params.means, params.logweights, params.variance]);
    });

    it('rejects non-finite parameter values and variance ≤ 0, naming the parameter, and leaks nothing', () => {
      const random = createRandom(11);
      const xSrc = random.normalTensor([2, 3]);
      const poison = (t: tf.Tensor, value: number) =>
        tf.tidy(() => {
          const flat = t.dataSync().slice();
          flat[1] = value;
          return tf.tensor(flat, t.shape);
        });
      const u = randomUParams([2, 3], random);
      const x0 = {
        space: 'x0' as const,
        means: u.means.clone(),
        logweights: u.logweights.clone(),
        variance: tf.tensor1d([0.5, 0.2]),
      };
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ ...u, means: poison(u.means, Number.NaN) }, /params.means.*NaN/],
        [{ ...u, means: poison(u.means, Number.POSITIVE_INFINITY) }, /params.means/],
        [{ ...u, logweights: poison(u.logweights, Number.NaN) }, /params.logweights/],
        [{ ...u, logweights: poison(u.logweights, Number.POSITIVE_INFINITY) }, /params.logweights/],
        [{ ...u, logstd: poison(u.logstd, Number.NaN) }, /params.logstd/],
        [{ ...x0, variance: tf.tensor1d([0.5, 0]) }, /params.variance.*> 0.*smallest value is 0/],
        [{ ...x0, variance: tf.tensor1d([-1, 0.5]) }, /params.variance/],
        [{ ...x0, variance: tf.tensor1d([Number.NaN, 0.5]) }, /params.variance/],
      ];
      const before = tf.memory().numTensors;
      for (const [params, message] of cases) {
        expect(() => gm.create(params as never, xSrc, 0.5)).toThrow(InvalidArgumentError);
        expect(() => gm.create(params as never, xSrc, 0.5)).toThrow(message);
      }
      expect(tf.memory().numTensors).toBe(before);
      // −∞ log-weights are zero weights (dropped components), not an error
      const dropped = { ...u, logweights: poison(u.logweights, Number.NEGATIVE_INFINITY) };
      gm.create(dropped, xSrc, 0.5).dispose();
      tf.dispose([
        xSrc,
        u.means,
        u.logweights,
        u.logstd,
        x0.means,
        x0.logweights,
        x0.variance,
        dropped.logweights,
      ]);
      for (const [params] of cases)
        tf.dispose(Object.values(params).filter((v) => v instanceof tf.Tensor) as tf.Tensor[]);
    });

    it('createGMFamily defaults apply and can be overridden', () => {
      const family = createGMFamily({ temperature: 0.5 });
      const random = createRandom(9);
      const u = randomUParams([2, 3], random);
      const xSrc = random.normalTensor([2, 3]);
      const a = family.create(u, xSrc, 0.5);
      const b = family.create(u, xSrc, 0.5, { temperature: 1 });
      expect(
        relativeError(
          a.variance.dataSync(),
          b.variance.dataSync().map((v) => v * 0.5),
        ),
      ).toBeLessThan(1e-6);
      expect(family.paramShapes({ shape: [4, 7, 7, 2], numComponents: 5 })).toEqual({
        means: [4, 7, 7, 5, 2],
        logweights: [4, 7, 7, 5],
        logstd: [4],
      });
      tf.dispose([u.means, u.logweights, u.logstd, xSrc]);
      a.dispose();
      b.dispose();
    });
  });
}
