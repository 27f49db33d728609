import type { Random } from '@piflow/core';
import { describePolicyConformance } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { createDXFamily, dx } from './index';
import { describeDXConformance, dxUParams, dxUSpaceReference } from './testing';

const N = 4;

const makeParams = (shape: number[], random: Random) => dxUParams(shape, random, N);

for (const mode of ['grid', 'polynomial'] as const) {
  const options = { shift: 3.2, segmentSize: 0.4, mode };
  const reference = dxUSpaceReference(options, N);
  describe(`DX ${mode}`, () => {
    describePolicyConformance({
      family: dx,
      makeParams,
      createOptions: options,
      referenceVelocity: reference,
    });
  });
}

describeDXConformance({ family: dx });

describe('DX family', () => {
  it('paramShapes puts N after the batch axis', () => {
    expect(dx.paramShapes({ shape: [8, 28, 28, 1], numPoints: 10 })).toEqual({ grid: [8, 10, 28, 28, 1] });
  });

  it('rejects bad intrinsic options with named errors', () => {
    const xSrc = tf.zeros([2, 3]);
    const uGrid = tf.zeros([2, 4, 3]);
    expect(() => dx.create({ space: 'u', uGrid }, xSrc, 0.5, { segmentSize: 0 })).toThrow(/segmentSize/);
    expect(() => dx.create({ space: 'u', uGrid }, xSrc, 0.5, { mode: 'spline' as never })).toThrow(/mode/);
    expect(() => dx.create({ space: 'u', uGrid }, xSrc, 0.5, { shift: -1 })).toThrow(/shift/);
    const family = createDXFamily({ mode: 'polynomial', shift: 2 });
    const p = family.create({ space: 'u', uGrid }, xSrc, 0.5);
    expect(p.mode).toBe('polynomial');
    expect(p.shift).toBe(2);
    p.dispose();
    tf.dispose([xSrc, uGrid]);
  });

  it('rejects non-finite grids (x0 or u), naming the parameter, and leaks nothing', async () => {
    await tf.setBackend('cpu');
    const xSrc = tf.zeros([2, 3]);
    const values = new Float32Array(2 * 4 * 3);
    const before = tf.memory().numTensors;
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      values[5] = bad;
      const grid = tf.tensor3d(values, [2, 4, 3]);
      expect(() => dx.create({ space: 'u', uGrid: grid }, xSrc, 0.5)).toThrow(
        /params.uGrid.*NaN or ±Infinity/,
      );
      expect(() => dx.create({ space: 'x0', x0Grid: grid }, xSrc, 0.5)).toThrow(/params.x0Grid/);
      grid.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    xSrc.dispose();
  });
});
