import { createRandom, type PolicyFamily, unwarp, warp } from '@piflow/core';
import { readFloat32, relativeError, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DXParams, DXPolicyOptions } from '../dx-policy';
import { dxVelocityReference } from './references';

export interface DXConformanceOptions {
  /** The DX family (it must accept { space: 'x0', x0Grid } and { space: 'u', uGrid } params). */
  family: PolicyFamily<DXParams, DXPolicyOptions>;
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
            const u = await readFloat32(policy.velocity(x, tf.tensor1d(sigma)));
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
            const u = await readFloat32(policy.velocity(x, tf.tensor1d(sigma)));
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
