import type { TeacherMetadata } from '@piflow/core';
import { decodeFrame, FrameError, type WireTensor } from '@piflow/teachers';
import type { ConditionSpec } from './conditions';
import { badRequest } from './http-error';

/** The decoded, checked inputs of one velocity request. */
export interface VelocityInputs {
  x: WireTensor;
  sigma: WireTensor;
  condition: Record<string, WireTensor>;
}

export interface ValidationContext {
  metadata: TeacherMetadata;
  /** Specs of the conditioning inputs that have one (see resolveConditionSpecs). */
  conditions: Readonly<Record<string, ConditionSpec>>;
  maxBatchSize: number;
}

const list = (names: readonly string[]) => names.map((n) => `"${n}"`).join(', ');
const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Index of the first value that is not finite, or -1. */
function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/** The rank x must have for the teacher's layout / sample shape (undefined: any rank ≥ 2). */
function expectedXRank(metadata: TeacherMetadata): number | undefined {
  if (metadata.sampleShape) return metadata.sampleShape.length + 1;
  if (metadata.layout === 'tokens') return 3;
  if (metadata.layout === 'image') return 4;
  return undefined; // vector-layout teachers accept [B, …, C]
}

function checkX(x: WireTensor, metadata: TeacherMetadata, maxBatchSize: number): number {
  if (x.dtype !== 'float32') throw badRequest('x', `Tensor "x" must be float32, not ${x.dtype}.`);
  const rank = expectedXRank(metadata);
  const sampleShape = metadata.sampleShape;
  const shapeOk =
    x.shape.length >= 2 &&
    (rank === undefined || x.shape.length === rank) &&
    (!sampleShape || sampleShape.every((d, i) => x.shape[i + 1] === d));
  if (!shapeOk) {
    const expected = sampleShape ? `[B, ${sampleShape.join(', ')}]` : `rank ${rank ?? '≥ 2'}`;
    throw badRequest('x', `Tensor "x" has shape ${shapeText(x.shape)}; this teacher takes ${expected}.`);
  }
  const batch = x.shape[0]!;
  if (batch < 1 || batch > maxBatchSize) {
    throw badRequest('x', `Batch size ${batch} is outside [1, ${maxBatchSize}].`);
  }
  const bad = firstNonFinite(x.data);
  if (bad >= 0) {
    throw badRequest('x', `Tensor "x" has a non-finite value (${x.data[bad]}) at flat index ${bad}.`);
  }
  return batch;
}

function checkSigma(sigma: WireTensor, batch: number): void {
  if (sigma.dtype !== 'float32' || sigma.shape.length !== 1 || sigma.shape[0] !== batch) {
    throw badRequest(
      'sigma',
      `Tensor "sigma" must be float32 of shape [${batch}], not ${sigma.dtype} ${shapeText(sigma.shape)}.`,
    );
  }
  for (let i = 0; i < sigma.data.length; i++) {
    const s = sigma.data[i]!;
    if (!Number.isFinite(s) || s < 0 || s > 1) {
      throw badRequest('sigma', `sigma[${i}] = ${s} is outside [0, 1].`);
    }
  }
}

function checkCondition(t: WireTensor, name: string, batch: number, spec: ConditionSpec | undefined): void {
  const field = `condition.${name}`;
  const rowShape = spec?.rowShape;
  const expectedShape = rowShape ? shapeText([batch, ...rowShape]) : `[${batch}, …]`;
  if (spec?.dtype && t.dtype !== spec.dtype) {
    let detail = '';
    if (spec.classes !== undefined && t.dtype === 'float32') {
      const fractional = t.data.findIndex((v) => !Number.isInteger(v));
      if (fractional >= 0)
        detail = ` (it has the non-integer value ${t.data[fractional]} at flat index ${fractional})`;
    }
    throw badRequest(
      field,
      `Tensor "${field}" must be ${spec.dtype}${spec.classes !== undefined ? ' class indices' : ''} of shape ${expectedShape}, not ${t.dtype}${detail}.`,
    );
  }
  if (t.shape.length < 1 || t.shape[0] !== batch) {
    throw badRequest(
      field,
      `Tensor "${field}" has shape ${shapeText(t.shape)}: its batch must be ${batch}, the batch of x.`,
    );
  }
  if (rowShape && (t.shape.length !== rowShape.length + 1 || rowShape.some((d, i) => t.shape[i + 1] !== d))) {
    throw badRequest(
      field,
      `Tensor "${field}" has shape ${shapeText(t.shape)}; this teacher takes ${expectedShape}.`,
    );
  }
  if (t.dtype === 'float32') {
    const bad = firstNonFinite(t.data);
    if (bad >= 0) {
      throw badRequest(
        field,
        `Tensor "${field}" has a non-finite value (${t.data[bad]}) at flat index ${bad}.`,
      );
    }
  }
  if (spec?.classes !== undefined) {
    const classes = spec.classes;
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= classes) {
        throw badRequest(
          field,
          `${field}[${i}] = ${v} is not a class of this teacher: class indices are integers in [0, ${classes}).`,
        );
      }
    }
  }
}

/**
 * Everything about a velocity request that can be checked without compute: the frame; the tensor names;
 * x's dtype, shape, batch size and finite values; σ's dtype, shape and range; each conditioning input's
 * dtype, shape, batch, finite values and class range. Throws a 400 HttpError naming the field.
 */
export function validateVelocityRequest(body: Uint8Array, context: ValidationContext): VelocityInputs {
  const { metadata, conditions, maxBatchSize } = context;
  const conditionNames = metadata.conditionNames ?? [];
  let tensors: WireTensor[];
  try {
    tensors = decodeFrame(body);
  } catch (error) {
    if (error instanceof FrameError)
      throw badRequest('body', `Malformed tensor frame: ${error.message}.`, 'bad_frame');
    throw error;
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const allowed = ['x', 'sigma', ...conditionNames.map((n) => `condition.${n}`)];
  for (const t of tensors) {
    if (!allowed.includes(t.name)) {
      throw badRequest(t.name, `Unexpected tensor "${t.name}"; this teacher takes ${list(allowed)}.`);
    }
  }
  const x = byName.get('x');
  const sigma = byName.get('sigma');
  if (!x) throw badRequest('x', 'The frame has no tensor "x".');
  if (!sigma) throw badRequest('sigma', 'The frame has no tensor "sigma".');
  const batch = checkX(x, metadata, maxBatchSize);
  checkSigma(sigma, batch);
  const condition: Record<string, WireTensor> = {};
  for (const name of conditionNames) {
    const t = byName.get(`condition.${name}`);
    if (!t) {
      throw badRequest(
        `condition.${name}`,
        `The frame has no tensor "condition.${name}"; this teacher needs ${list(conditionNames.map((n) => `condition.${n}`))}.`,
      );
    }
    checkCondition(t, name, batch, conditions[name]);
    condition[name] = t;
  }
  return { x, sigma, condition };
}
