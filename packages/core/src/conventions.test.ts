import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertSigma, sigmaValues } from './conventions';
import { InvalidArgumentError } from './errors';

/** Makes `t` behave like a tfjs WebGPU tensor in Node whose values live only on the GPU. */
function dropSyncReadback(t: tf.Tensor): void {
  Object.defineProperty(t, 'dataSync', {
    configurable: true,
    value: () => {
      throw new ReferenceError('OffscreenCanvas is not defined');
    },
  });
}

describe('σ tensors at API boundaries', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('validates every value of a σ tensor', () => {
    const sigma = tf.tensor1d([0.5, 1.2]);
    const error = (() => {
      try {
        assertSigma('sigma', sigma, 2);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).argument).toBe('sigma[1]');
    sigma.dispose();
  });

  it('reads a σ tensor once: it stays valid after its values can no longer be read synchronously', () => {
    const sigma = tf.tensor1d([0.25, 0.75]);
    assertSigma('sigma', sigma, 2);
    dropSyncReadback(sigma); // what a WebGPU op does to a tensor made from JS values, in Node
    expect(() => assertSigma('sigma', sigma, 2)).not.toThrow();
    expect(Array.from(sigmaValues(sigma, 2))).toEqual([0.25, 0.75]);
    // A copy each time: callers may keep or change it.
    const values = sigmaValues(sigma, 2);
    values[0] = 9;
    expect(sigmaValues(sigma, 2)[0]).toBe(0.25);
    sigma.dispose();
  });

  it('a σ tensor that cannot be read synchronously gives an InvalidArgumentError naming the way out', () => {
    const sigma = tf.tensor1d([0.5, 0.5]);
    dropSyncReadback(sigma);
    let error: unknown;
    try {
      assertSigma('sigmaSrc', sigma, 2);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).argument).toBe('sigmaSrc');
    expect((error as Error).message).toMatch(/OffscreenCanvas is not defined/);
    expect((error as Error).message).toMatch(/await sigma\.data\(\)/);
    expect((error as Error).cause).toBeInstanceOf(ReferenceError);
    expect(() => sigmaValues(sigma, 2)).toThrow(InvalidArgumentError);
    sigma.dispose();
  });

  it('a disposed σ tensor is still rejected as disposed', () => {
    const sigma = tf.tensor1d([0.5]);
    assertSigma('sigma', sigma, 1);
    sigma.dispose();
    expect(() => assertSigma('sigma', sigma, 1)).toThrow(/disposed/);
    expect(() => sigmaValues(sigma, 1)).toThrow(/disposed/);
  });
});
