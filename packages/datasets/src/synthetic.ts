import { type AnalyticGMFlow, assertNumber, createAnalyticGMFlow, type Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/** A 2-D dataset sampler. */
export interface Dataset2D {
  readonly name: string;
  /** Draws n points, [n, 2] float32. */
  sample(n: number, random: Random): tf.Tensor2D;
}

/**
 * Checkerboard: uniform on the black squares of a `squares × squares` board over [−2, 2]² (the classic
 * 4 × 4 board by default).
 */
export function checkerboard(options: { squares?: number; size?: number } = {}): Dataset2D {
  const { squares = 4, size = 4 } = options;
  assertNumber('squares', squares, { min: 2, integer: true });
  assertNumber('size', size, { min: 0, minExclusive: true });
  const cell = size / squares;
  return {
    name: 'checkerboard',
    sample(n, random) {
      assertNumber('n', n, { min: 1, integer: true });
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        let cx: number;
        let cy: number;
        do {
          cx = random.integer(squares);
          cy = random.integer(squares);
        } while ((cx + cy) % 2 !== 0);
        out[2 * i] = -size / 2 + (cx + random.uniform()) * cell;
        out[2 * i + 1] = -size / 2 + (cy + random.uniform()) * cell;
      }
      return tf.tensor2d(out, [n, 2]);
    },
  };
}

/** Concentric rings with radial Gaussian noise. */
export function rings(options: { radii?: number[]; noise?: number } = {}): Dataset2D {
  const { radii = [0.6, 1.3, 2], noise = 0.05 } = options;
  radii.forEach((r, i) => assertNumber(`radii[${i}]`, r, { min: 0, minExclusive: true }));
  assertNumber('noise', noise, { min: 0 });
  const total = radii.reduce((a, b) => a + b, 0);
  return {
    name: 'rings',
    sample(n, random) {
      assertNumber('n', n, { min: 1, integer: true });
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        let u = random.uniform() * total;
        let k = 0;
        while (k < radii.length - 1 && u >= radii[k]!) u -= radii[k++]!;
        const angle = 2 * Math.PI * random.uniform();
        const r = radii[k]! + noise * random.normal();
        out[2 * i] = r * Math.cos(angle);
        out[2 * i + 1] = r * Math.sin(angle);
      }
      return tf.tensor2d(out, [n, 2]);
    },
  };
}

export interface GaussianMixtureOptions {
  dimension: number;
  numComponents: number;
  /** Shared isotropic std of every component. */
  std: number;
  /** Typical distance of the means from the origin (means ~ N(0, spread²/C·I)·…). Default 3. */
  spread?: number;
  /** Dirichlet-like unevenness of the weights: 0 = uniform (default 0.5). */
  unevenness?: number;
  random: Random;
}

/**
 * A random Gaussian mixture with shared isotropic variance in any dimension, as an exact analytic flow
 * (its velocity and posterior are closed-form: the oracle teacher for students in that dimension).
 */
export function randomGaussianMixture(options: GaussianMixtureOptions): AnalyticGMFlow {
  const { dimension: C, numComponents: K, std, spread = 3, unevenness = 0.5, random } = options;
  assertNumber('dimension', C, { min: 1, integer: true });
  assertNumber('numComponents', K, { min: 1, integer: true });
  assertNumber('std', std, { min: 0, minExclusive: true });
  const means = Array.from({ length: K }, () => {
    const v = Array.from({ length: C }, () => random.normal());
    const norm = Math.hypot(...v) || 1;
    const radius = spread * (0.6 + 0.4 * random.uniform());
    return v.map((x) => (x / norm) * radius);
  });
  const raw = Array.from({ length: K }, () => 1 + unevenness * (2 * random.uniform() - 1));
  const total = raw.reduce((a, b) => a + b, 0);
  const weights = raw.map((w) => w / total);
  weights[K - 1] = 1 - weights.slice(0, K - 1).reduce((a, b) => a + b, 0);
  return createAnalyticGMFlow({ means, std, weights });
}
