import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { createAnalyticGMFlow } from './analytic-gm-flow';
import { InvalidArgumentError } from './errors';
import { createRandom } from './random';
import { relativeError } from './testing/numerics';

const flow = createAnalyticGMFlow({
  means: [
    [-1.5, 0.5],
    [1, 1],
    [0.5, -2],
  ],
  std: 0.35,
  weights: [0.2, 0.5, 0.3],
});

/** Marginal density of x_σ in 2-D (float64): a GM with means (1 − σ)μ_k and variance σ² + (1 − σ)²s². */
function density(x: number, y: number, sigma: number): number {
  const D = sigma * sigma + (1 - sigma) ** 2 * flow.std ** 2;
  let p = 0;
  flow.means.forEach((m, k) => {
    const dx = x - (1 - sigma) * m[0]!;
    const dy = y - (1 - sigma) * m[1]!;
    p += (flow.weights[k]! * Math.exp(-(dx * dx + dy * dy) / (2 * D))) / (2 * Math.PI * D);
  });
  return p;
}

describe('analytic Gaussian-mixture flow', () => {
  it('its velocity satisfies the continuity equation ∂p/∂σ + ∇·(p·u) = 0 (float64 finite differences)', () => {
    const h = 1e-4;
    for (const [x, y, sigma] of [
      [0.3, -0.2, 0.5],
      [1.2, 0.9, 0.2],
      [-1, 0.4, 0.8],
      [0.1, -1.7, 0.05],
    ] as const) {
      const flux = (px: number, py: number, s: number, axis: 0 | 1) =>
        density(px, py, s) * flow.velocityFloat64([px, py], s)[axis]!;
      const dpds = (density(x, y, sigma + h) - density(x, y, sigma - h)) / (2 * h);
      const div =
        (flux(x + h, y, sigma, 0) - flux(x - h, y, sigma, 0)) / (2 * h) +
        (flux(x, y + h, sigma, 1) - flux(x, y - h, sigma, 1)) / (2 * h);
      expect(Math.abs(dpds + div)).toBeLessThan(1e-6 * Math.max(1, Math.abs(dpds)));
    }
  });

  it('float32 tensor velocity matches the float64 reference on [B, H, W, C] layouts, σ ∈ [0, 1]', () => {
    const random = createRandom(1);
    const x = random.normalTensor([4, 3, 5, 2]);
    for (const sigma of [0, 1e-3, 0.3, 1, tf.tensor1d([0, 0.2, 0.7, 1])]) {
      const u = flow.velocity(x, sigma as never);
      const s =
        typeof sigma === 'number'
          ? sigma
          : Array.from(sigma.dataSync()).flatMap((v) => new Array(15).fill(v));
      expect(relativeError(u.dataSync(), flow.velocityFloat64(x.dataSync(), s))).toBeLessThan(1e-5);
      u.dispose();
    }
    x.dispose();
  });

  it('velocity is −x at σ = 0 and E[ε] − E[x0] = −Σ w_k μ_k at σ = 1', () => {
    const x = tf.tensor2d([[0.3, -0.4]]);
    expect(Array.from(flow.velocity(x, 0).dataSync())).toEqual([
      expect.closeTo(-0.3, 6),
      expect.closeTo(0.4, 6),
    ]);
    const mean = [0, 1].map((c) => flow.means.reduce((a, m, k) => a + flow.weights[k]! * m[c]!, 0));
    expect(Array.from(flow.velocity(x, 1).dataSync())).toEqual([
      expect.closeTo(0.3 - mean[0]!, 5),
      expect.closeTo(-0.4 - mean[1]!, 5),
    ]);
    x.dispose();
  });

  it('posterior mean gives back the velocity: u = (x − E[x0|x])/σ', () => {
    const random = createRandom(2);
    const x = random.normalTensor([6, 2]);
    const post = flow.posterior(x, 0.6);
    const mean = tf.sum(tf.mul(tf.expandDims(tf.softmax(post.logweights), -1), post.means), -2);
    const u = tf.div(tf.sub(x, mean), 0.6);
    expect(relativeError(u.dataSync(), flow.velocityFloat64(x.dataSync(), 0.6))).toBeLessThan(1e-5);
    const v = post.variance.dataSync();
    const s2 = flow.std ** 2;
    expect(v[0]).toBeCloseTo((s2 * 0.36) / (0.36 + 0.16 * s2), 6);
    tf.dispose([x, post.means, post.logweights, post.variance, mean, u]);
  });

  it('samples have the mixture moments and log-density/assignment are consistent', () => {
    const random = createRandom(3);
    const { x0, components } = flow.sample(30000, random);
    const counts = [0, 0, 0];
    components.forEach((k) => counts[k]!++);
    // component frequencies within 4 standard errors √(w(1 − w)/n)
    counts.forEach((c, k) => {
      const w = flow.weights[k]!;
      expect(Math.abs(c / 30000 - w)).toBeLessThan(4 * Math.sqrt((w * (1 - w)) / 30000));
    });
    const values = x0.dataSync();
    const assigned = flow.assignComponents(values);
    let agree = 0;
    assigned.forEach((k, i) => (agree += k === components[i] ? 1 : 0));
    expect(agree / 30000).toBeGreaterThan(0.97);
    const logp = flow.logDensity(values);
    const mean = logp.reduce((a, b) => a + b, 0) / logp.length;
    // entropy of a well-separated mixture ≈ H(weights) + C/2·log(2πe s²)
    const H =
      -flow.weights.reduce((a, w) => a + w * Math.log(w), 0) + Math.log(2 * Math.PI * Math.E * flow.std ** 2);
    expect(-mean).toBeCloseTo(H, 1);
    x0.dispose();
  });

  it('validates its definition and inputs', () => {
    expect(() => createAnalyticGMFlow({ means: [], std: 1 })).toThrow(InvalidArgumentError);
    expect(() => createAnalyticGMFlow({ means: [[0, 1], [2]], std: 1 })).toThrow(/means\[1\]/);
    expect(() => createAnalyticGMFlow({ means: [[0]], std: 0 })).toThrow(/`std`/);
    expect(() => createAnalyticGMFlow({ means: [[0], [1]], std: 1, weights: [0.5, 0.6] })).toThrow(
      /summing to 1/,
    );
    const x = tf.zeros([2, 3]);
    expect(() => flow.velocity(x, 0.5)).toThrow(/channels last, C = 2/);
    const y = tf.zeros([2, 2]);
    expect(() => flow.velocity(y, 1.01)).toThrow(/`sigma`/);
    tf.dispose([x, y]);
  });
});
