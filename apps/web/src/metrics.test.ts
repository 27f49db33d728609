import { InvalidArgumentError } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import { fractionInSquares, meanEndpointGap } from './metrics';

describe('fractionInSquares', () => {
  it('counts samples in the data squares of the 4 × 4 board over [−2, 2]² (even cell-index sum)', () => {
    // (−1.5, −1.5): cell (0, 0), data. (−0.5, −1.5): cell (1, 0), empty. (0.5, 0.5): cell (2, 2), data.
    // (2.5, 0): outside. (NaN, 0): not finite, not counted.
    expect(fractionInSquares([-1.5, -1.5, -0.5, -1.5, 0.5, 0.5, 2.5, 0])).toBe(0.5);
    expect(fractionInSquares([-1.5, -1.5, Number.NaN, 0])).toBe(1);
    expect(fractionInSquares([])).toBe(0);
  });

  it('takes another board and validates it', () => {
    expect(fractionInSquares([0.5, 0.5, -0.5, 0.5], { squares: 2, size: 2 })).toBe(0.5);
    expect(() => fractionInSquares([0, 0], { squares: 1, size: 2 })).toThrow(InvalidArgumentError);
  });
});

describe('meanEndpointGap', () => {
  const paths = (points: number[], length: number) => ({
    count: 2,
    length,
    dim: 2,
    points: Float32Array.from(points),
    evaluations: [],
  });

  it('averages the distances between last states', () => {
    const a = paths([9, 9, 9, 9, 0, 0, 1, 1], 2);
    const b = paths([3, 4, 1, 1], 1);
    expect(meanEndpointGap(a, b)).toBeCloseTo(2.5, 6);
  });

  it('rejects paths of different counts', () => {
    expect(() => meanEndpointGap(paths([0, 0, 0, 0], 1), { ...paths([0, 0, 0, 0], 1), count: 1 })).toThrow(
      InvalidArgumentError,
    );
  });
});
