import { assertNumber, InvalidArgumentError } from '@piflow/core';
import { CHECKERBOARD } from './draw';
import type { Trajectories } from './generate';

/** Fraction of the finite 2-D samples ([x0, y0, x1, y1, …]) that fall in the checkerboard's data squares. */
export function fractionInSquares(
  values: ArrayLike<number>,
  board: { squares: number; size: number } = CHECKERBOARD,
): number {
  assertNumber('board.squares', board?.squares, { min: 2, integer: true });
  assertNumber('board.size', board.size, { min: 0, minExclusive: true });
  const cell = board.size / board.squares;
  let finite = 0;
  let inside = 0;
  for (let i = 0; i + 1 < values.length; i += 2) {
    const x = values[i]!;
    const y = values[i + 1]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    finite++;
    const cx = Math.floor((x + board.size / 2) / cell);
    const cy = Math.floor((y + board.size / 2) / cell);
    if (cx >= 0 && cy >= 0 && cx < board.squares && cy < board.squares && (cx + cy) % 2 === 0) inside++;
  }
  return finite === 0 ? 0 : inside / finite;
}

/** Mean Euclidean distance between the last states of two sets of paths from the same noise. */
export function meanEndpointGap(a: Trajectories, b: Trajectories): number {
  if (a.count !== b.count || a.dim !== b.dim) {
    throw new InvalidArgumentError('b', `paths matching a (${a.count} × ${a.dim})`, `${b.count} × ${b.dim}`);
  }
  const lastA = (a.length - 1) * a.count * a.dim;
  const lastB = (b.length - 1) * b.count * b.dim;
  let total = 0;
  for (let i = 0; i < a.count; i++) {
    let squared = 0;
    for (let c = 0; c < a.dim; c++) {
      const d = a.points[lastA + i * a.dim + c]! - b.points[lastB + i * b.dim + c]!;
      squared += d * d;
    }
    total += Math.sqrt(squared);
  }
  return total / a.count;
}
