/** `version` (X.Y.Z) satisfies the caret range `range` (^X.Y.Z), with npm's rules for 0.x and 0.0.x. */
export function satisfiesCaret(version: string, range: string): boolean {
  const r = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const v = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!r || !v) return false;
  const [a, b, c] = r.slice(1).map(Number) as [number, number, number];
  const [x, y, z] = v.slice(1).map(Number) as [number, number, number];
  if (x !== a) return false;
  if (a > 0) return y > b || (y === b && z >= c);
  if (y !== b) return false;
  return b > 0 ? z >= c : z === c;
}
