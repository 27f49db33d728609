// The conformance suites (core's and the GM / DX families'), rerun on tfjs's WebGPU backend in Node through Dawn (the npm `webgpu` package;
// Mesa llvmpipe through EGL_PLATFORM=surfaceless where there is no GPU). Their "fused rollout matches op by
// op" cases run this package's WGSL kernels. conformance.browser.test.ts runs the same in headless Chromium.
// The suites read results with `await t.data()`: Node's WebGPU has no synchronous readback of GPU values.
import { createRandom, InvalidArgumentError, rollout } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import { DX_FUSED_ROLLOUT_KERNEL, dx } from '@piflow/policy-dx';
import { dxUParams } from '@piflow/policy-dx/testing';
import {
  GM_FUSED_ROLLOUT_KERNEL,
  gm,
  sampleGaussianMixture,
  sampleGaussianMixtureAsync,
} from '@piflow/policy-gm';
import { gmUParams } from '@piflow/policy-gm/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeWebGPUConformance } from './__fixtures__/webgpu-conformance';
import { setupWebGPU } from './setup-webgpu';

describeWebGPUConformance();

describe('the suites above ran on Dawn in Node, fused kernels included', () => {
  beforeAll(async () => {
    await useBackend('webgpu');
  });

  it("is the Node (Dawn) WebGPU backend, and the suites' fused-rollout cases dispatch the WGSL kernels", async () => {
    expect((await setupWebGPU({ setBackend: false })).platform).toBe('node');
    expect(tf.getBackend()).toBe('webgpu');
    const random = createRandom(7);
    const shape = [3, 4];
    const xSrc = random.normalTensor(shape);
    const policies = [
      gm.create(gmUParams(shape, random), xSrc, tf.tensor1d([0.9, 0.6, 0.4])),
      dx.create(dxUParams(shape, random), xSrc, tf.tensor1d([0.9, 0.6, 0.4]), {
        shift: 3.2,
        segmentSize: 0.4,
        mode: 'grid',
      }),
    ];
    const kernels: string[][] = [];
    for (const policy of policies) {
      const info = await tf.profile(() =>
        rollout(policy, xSrc, {
          sigmaSrc: tf.tensor1d([0.9, 0.6, 0.4]),
          sigmaDst: tf.tensor1d([0, 0.24, 0.16]),
          substeps: 64,
          shift: 2,
        }),
      );
      kernels.push(info.kernelNames);
      policy.dispose();
    }
    expect(kernels[0]).toContain(GM_FUSED_ROLLOUT_KERNEL);
    expect(kernels[1]).toContain(DX_FUSED_ROLLOUT_KERNEL);
    xSrc.dispose();
  });

  it('a σ tensor stays usable after GPU ops have used it; a GPU-computed σ gives a clear error until read', async () => {
    const random = createRandom(8);
    const xSrc = random.normalTensor([2, 3]);
    const params = gmUParams([2, 3], random);
    const policy = gm.create(params, xSrc, 0.8);
    // Made from JS values and validated once, then uploaded by an op (which drops its JS copy): still valid.
    const sigma = tf.tensor1d([0.5, 0.3]);
    const u1 = policy.velocity(xSrc, sigma);
    const scaled = tf.mul(xSrc, tf.reshape(sigma, [2, 1]));
    const u2 = policy.velocity(xSrc, sigma);
    expect(Array.from(await u2.data())).toEqual(Array.from(await u1.data()));
    // Computed on the GPU (large enough that tfjs does not forward the op to its CPU kernels): no
    // synchronous readback in Node, so validation cannot read it.
    const half = tf.mul(tf.ones([4096]), 0.5);
    const computed = tf.slice(half, [0], [2]) as tf.Tensor1D;
    let error: unknown;
    try {
      policy.velocity(xSrc, computed);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).argument).toBe('sigma');
    expect((error as Error).message).toMatch(/await sigma\.data\(\)/);
    // Read once asynchronously, it is validated and used like any other σ tensor.
    await computed.data();
    const u3 = policy.velocity(xSrc, computed);
    const u4 = policy.velocity(xSrc, 0.5);
    expect(Array.from(await u3.data())).toEqual(Array.from(await u4.data()));
    tf.dispose([xSrc, params.means, params.logweights, params.logstd, sigma, u1, scaled, u2]);
    tf.dispose([half, computed, u3, u4]);
    policy.dispose();
  });

  it('sampleGaussianMixtureAsync draws from GPU-computed mixture parameters (the sync version cannot read them)', async () => {
    const random = createRandom(9);
    const positions = 1024; // large enough that tfjs runs the ops on the GPU
    const means = tf.mul(random.normalTensor([1, positions, 2, 3]), 1);
    const logweights = tf.add(random.normalTensor([1, positions, 2]), 0);
    const params = { space: 'x0' as const, means, logweights, variance: tf.tensor1d([0.04]) };
    expect(() => sampleGaussianMixture(params, createRandom(1))).toThrow();
    const x0 = await sampleGaussianMixtureAsync(params, createRandom(1));
    expect(x0.shape).toEqual([1, positions, 3]);
    // Each draw lies near one of its position's two means (|ε|·0.2 ≤ 1.2 for |ε| ≤ 6).
    const [v, m] = [await x0.data(), await means.data()];
    for (let p = 0; p < positions; p++) {
      const distance = (k: number) =>
        Math.max(...[0, 1, 2].map((c) => Math.abs(v[3 * p + c]! - m[(2 * p + k) * 3 + c]!)));
      expect(Math.min(distance(0), distance(1))).toBeLessThan(1.2);
    }
    tf.dispose([means, logweights, params.variance, x0]);
  });
});
