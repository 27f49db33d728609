import { assertNumber, createRandom, InvalidArgumentError, type Random } from '@piflow/core';

/** Samples as a flat row-major array of N rows of dimension D. */
export interface Samples {
  values: ArrayLike<number>;
  dimension: number;
}

function rows(samples: Samples, argument: string): number {
  const { values, dimension } = samples;
  assertNumber(`${argument}.dimension`, dimension, { min: 1, integer: true });
  const n = values.length / dimension;
  if (!Number.isInteger(n) || n < 2) {
    throw new InvalidArgumentError(
      argument,
      `at least 2 rows of ${dimension} values`,
      `${values.length} values`,
    );
  }
  return n;
}

function sameDimension(a: Samples, b: Samples): void {
  if (a.dimension !== b.dimension) {
    throw new InvalidArgumentError('b.dimension', `${a.dimension} (the dimension of a)`, String(b.dimension));
  }
}

function squaredDistance(
  a: ArrayLike<number>,
  i: number,
  b: ArrayLike<number>,
  j: number,
  d: number,
): number {
  let acc = 0;
  for (let c = 0; c < d; c++) {
    const t = a[i * d + c]! - b[j * d + c]!;
    acc += t * t;
  }
  return acc;
}

/**
 * Sliced Wasserstein-2 distance: the root mean over random unit directions of the squared 1-D W2 between the
 * projections (quantiles matched after sorting; unequal sizes are compared at common quantiles).
 */
export function slicedWasserstein(
  a: Samples,
  b: Samples,
  options: { projections?: number; random?: Random } = {},
): number {
  const na = rows(a, 'a');
  const nb = rows(b, 'b');
  sameDimension(a, b);
  const { projections = 128 } = options;
  const random = options.random ?? createRandom(0);
  const d = a.dimension;
  const direction = new Float64Array(d);
  const pa = new Float64Array(na);
  const pb = new Float64Array(nb);
  const m = Math.max(na, nb);
  let total = 0;
  for (let p = 0; p < projections; p++) {
    let norm = 0;
    for (let c = 0; c < d; c++) {
      direction[c] = random.normal();
      norm += direction[c]! ** 2;
    }
    norm = Math.sqrt(norm);
    for (let i = 0; i < na; i++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += a.values[i * d + c]! * direction[c]!;
      pa[i] = s / norm;
    }
    for (let i = 0; i < nb; i++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += b.values[i * d + c]! * direction[c]!;
      pb[i] = s / norm;
    }
    pa.sort();
    pb.sort();
    let acc = 0;
    for (let q = 0; q < m; q++) {
      const t = (q + 0.5) / m;
      acc += (pa[Math.min(Math.floor(t * na), na - 1)]! - pb[Math.min(Math.floor(t * nb), nb - 1)]!) ** 2;
    }
    total += acc / m;
  }
  return Math.sqrt(total / projections);
}

/** Unbiased squared MMD with an RBF kernel exp(−‖x − y‖²/(2·bandwidth²)); bandwidth defaults to the median distance. */
export function mmdRBF(a: Samples, b: Samples, options: { bandwidth?: number } = {}): number {
  const na = rows(a, 'a');
  const nb = rows(b, 'b');
  sameDimension(a, b);
  const d = a.dimension;
  let bandwidth = options.bandwidth;
  if (bandwidth === undefined) {
    const distances: number[] = [];
    for (let i = 0; i < Math.min(na, 200); i++)
      for (let j = 0; j < Math.min(nb, 200); j++)
        distances.push(Math.sqrt(squaredDistance(a.values, i, b.values, j, d)));
    distances.sort((x, y) => x - y);
    bandwidth = Math.max(distances[Math.floor(distances.length / 2)]!, 1e-12);
  }
  assertNumber('bandwidth', bandwidth, { min: 0, minExclusive: true });
  const g = 1 / (2 * bandwidth * bandwidth);
  let kaa = 0;
  for (let i = 0; i < na; i++)
    for (let j = i + 1; j < na; j++) kaa += Math.exp(-g * squaredDistance(a.values, i, a.values, j, d));
  let kbb = 0;
  for (let i = 0; i < nb; i++)
    for (let j = i + 1; j < nb; j++) kbb += Math.exp(-g * squaredDistance(b.values, i, b.values, j, d));
  let kab = 0;
  for (let i = 0; i < na; i++)
    for (let j = 0; j < nb; j++) kab += Math.exp(-g * squaredDistance(a.values, i, b.values, j, d));
  return (2 * kaa) / (na * (na - 1)) + (2 * kbb) / (nb * (nb - 1)) - (2 * kab) / (na * nb);
}

/** Energy distance 2·E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (U-statistics). */
export function energyDistance(a: Samples, b: Samples): number {
  const na = rows(a, 'a');
  const nb = rows(b, 'b');
  sameDimension(a, b);
  const d = a.dimension;
  let xy = 0;
  for (let i = 0; i < na; i++)
    for (let j = 0; j < nb; j++) xy += Math.sqrt(squaredDistance(a.values, i, b.values, j, d));
  let xx = 0;
  for (let i = 0; i < na; i++)
    for (let j = i + 1; j < na; j++) xx += Math.sqrt(squaredDistance(a.values, i, a.values, j, d));
  let yy = 0;
  for (let i = 0; i < nb; i++)
    for (let j = i + 1; j < nb; j++) yy += Math.sqrt(squaredDistance(b.values, i, b.values, j, d));
  return (2 * xy) / (na * nb) - (2 * xx) / (na * (na - 1)) - (2 * yy) / (nb * (nb - 1));
}

/** Diversity: mean pairwise Euclidean distance (over at most `maxPairs` random pairs). */
export function diversity(samples: Samples, options: { maxPairs?: number; random?: Random } = {}): number {
  const n = rows(samples, 'samples');
  const d = samples.dimension;
  const { maxPairs = 20000 } = options;
  const total = (n * (n - 1)) / 2;
  if (total <= maxPairs) {
    let acc = 0;
    for (let i = 0; i < n; i++)
      for (let j = i + 1; j < n; j++)
        acc += Math.sqrt(squaredDistance(samples.values, i, samples.values, j, d));
    return acc / total;
  }
  const random = options.random ?? createRandom(0);
  let acc = 0;
  for (let p = 0; p < maxPairs; p++) {
    const i = random.integer(n);
    let j = random.integer(n - 1);
    if (j >= i) j += 1;
    acc += Math.sqrt(squaredDistance(samples.values, i, samples.values, j, d));
  }
  return acc / maxPairs;
}

/** Teacher alignment: root-mean-square distance between paired rows (student vs teacher from the same noise). */
export function teacherAlignment(student: Samples, teacher: Samples): number {
  const n = rows(student, 'student');
  sameDimension(student, teacher);
  if (teacher.values.length !== student.values.length) {
    throw new InvalidArgumentError(
      'teacher',
      `${n} rows paired with the student's`,
      `${teacher.values.length / teacher.dimension} rows`,
    );
  }
  let acc = 0;
  for (let i = 0; i < student.values.length; i++) acc += (student.values[i]! - teacher.values[i]!) ** 2;
  return Math.sqrt(acc / n);
}
