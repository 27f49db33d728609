import * as tf from '@tensorflow/tfjs-core';
import { assertNumber } from './validation';

/** The whole state of a {@link Random}: four 32-bit words. Serialisable for checkpoints. */
export type RandomState = readonly [number, number, number, number];

/**
 * A small, fast, seedable generator (xoshiro128**) with Gaussian sampling. Noise is generated in JS because
 * `tf.randomNormal` is slow on wasm and not reproducible across backends; the same seed gives the same
 * numbers on every backend.
 */
export class Random {
  private s: Uint32Array;
  private spare: number | null = null;

  private constructor(state: Uint32Array) {
    this.s = state;
  }

  /** A generator seeded from an integer (splitmix32 expands the seed into the state). */
  static fromSeed(seed: number): Random {
    assertNumber('seed', seed, { integer: true });
    let z = seed >>> 0;
    const s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
      s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    if (s[0] === 0 && s[1] === 0 && s[2] === 0 && s[3] === 0) s[0] = 1;
    return new Random(s);
  }

  /** A generator that continues from a saved {@link RandomState}. */
  static fromState(state: RandomState): Random {
    if (!Array.isArray(state) || state.length !== 4) {
      throw new TypeError('Random.fromState: expected an array of four 32-bit words');
    }
    return new Random(Uint32Array.from(state));
  }

  /** The current state (the cached Gaussian spare is dropped, so a restored generator may differ by one draw). */
  state(): RandomState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  integer(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  fillNormal<T extends Float32Array | Float64Array>(out: T): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal();
    return out;
  }

  fillUniform<T extends Float32Array | Float64Array>(out: T, low = 0, high = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.uniform();
    return out;
  }

  /** A float32 tensor of standard normal noise. */
  normalTensor(shape: number[]): tf.Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(this.fillNormal(new Float32Array(size)), shape, 'float32');
  }

  /** A float32 tensor of uniform values in [low, high). */
  uniformTensor(shape: number[], low = 0, high = 1): tf.Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    return tf.tensor(this.fillUniform(new Float32Array(size), low, high), shape, 'float32');
  }

  /** A random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.integer(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A seeded generator; with no seed, one from `Math.random`. */
export function createRandom(seed?: number): Random {
  return Random.fromSeed(seed ?? Math.floor(Math.random() * 2 ** 31));
}
