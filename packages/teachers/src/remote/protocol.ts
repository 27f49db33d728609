/**
 * # The piflow remote-teacher protocol, version 1 (`piflow-teacher/1`)
 *
 * HTTP/1.1, JSON for metadata and errors, a small binary frame for tensors:
 *
 * ```
 * frame = u32 headerLength (little-endian) | header (UTF-8 JSON, headerLength bytes) | tensor data
 * header = { "tensors": [ { "name": string, "dtype": "float32" | "int32", "shape": number[] }, … ] }
 * ```
 * The tensor data are the tensors of the header in order, each row-major, little-endian, 4 bytes per value,
 * with no gaps; writers pad the header JSON with spaces so that the data start at a multiple of 4 bytes.
 * The frame is exactly 4 + headerLength + Σ 4·size(tensor) bytes long.
 *
 * - `GET /v1/health` → 200 `{ "status": "ok", "queue": { "active", "waiting", "capacity" } }`.
 * - `GET /v1/metadata` → 200 `{ "protocol": "piflow-teacher/1", "metadata": TeacherMetadata,
 *   "maxBatchSize": number, "maxBodyBytes": number, "conditions"?: { [name]: WireConditionSpec } }`.
 * - `POST /v1/velocity` with `Content-Type: application/x-piflow-tensors` and a frame holding `x`
 *   ([B, …sampleShape], float32, finite), `sigma` ([B], float32, each in [0, 1]) and one tensor per
 *   conditioning input named `condition.<name>` (batch B, finite; as its `conditions` entry says, if any) →
 *   200 with a frame holding `u` (float32, the shape of x). Servers that know what an input must look like
 *   (dtype, row shape, class count) advertise it in `conditions`.
 * - Errors: status 400 (malformed frame, shapes, dtypes, σ, non-finite values, class indices out of range),
 *   401 (missing/wrong bearer token), 404 (unknown route), 408 (headers or body too slow; the connection is
 *   closed), 413 (body over the limit), 415 (wrong content type), 503 (queue full, no room for more request
 *   bodies, or shutting down; has `Retry-After`), 500 (the teacher failed), with the JSON body
 *   `{ "error": { "code", "message", "field"? } }` (`field`: the part at fault, e.g. `condition.labels`).
 * - Authentication (optional): `Authorization: Bearer <token>` on `/v1/metadata` and `/v1/velocity`.
 */
export const protocolVersion = 'piflow-teacher/1';
export const tensorContentType = 'application/x-piflow-tensors';

export type WireDType = 'float32' | 'int32';

export interface WireTensor {
  name: string;
  dtype: WireDType;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Why a frame could not be decoded (the server answers 400 with this message). */
export class FrameError extends Error {
  override name = 'FrameError';
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Encodes tensors into one frame. */
export function encodeFrame(tensors: readonly WireTensor[]): Uint8Array<ArrayBuffer> {
  const header = { tensors: tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] })) };
  let json = JSON.stringify(header);
  const jsonBytes = textEncoder.encode(json).length;
  json += ' '.repeat((4 - ((4 + jsonBytes) % 4)) % 4);
  const headerBytes = textEncoder.encode(json);
  let dataBytes = 0;
  for (const t of tensors) {
    if (t.data.length !== sizeOf(t.shape)) {
      throw new FrameError(
        `tensor "${t.name}" has ${t.data.length} values for shape [${t.shape.join(', ')}]`,
      );
    }
    dataBytes += t.data.length * 4;
  }
  const out = new Uint8Array(4 + headerBytes.length + dataBytes);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerBytes.length, true);
  out.set(headerBytes, 4);
  let offset = 4 + headerBytes.length;
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  for (const t of tensors) {
    if (littleEndian) out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length * 4), offset);
    else {
      for (let i = 0; i < t.data.length; i++) {
        if (t.dtype === 'float32') view.setFloat32(offset + 4 * i, t.data[i]!, true);
        else view.setInt32(offset + 4 * i, t.data[i]!, true);
      }
    }
    offset += t.data.length * 4;
  }
  return out;
}

export interface DecodeLimits {
  /** Largest number of tensors in one frame (default 64). */
  maxTensors?: number;
  /** Largest header JSON in bytes (default 64 KiB). */
  maxHeaderBytes?: number;
  /** Largest rank (default 8). */
  maxRank?: number;
}

/** Decodes and checks one frame: header syntax, dtypes, shapes and the exact byte length. */
export function decodeFrame(bytes: Uint8Array, limits: DecodeLimits = {}): WireTensor[] {
  const { maxTensors = 64, maxHeaderBytes = 64 * 1024, maxRank = 8 } = limits;
  if (bytes.length < 4)
    throw new FrameError(`body of ${bytes.length} bytes is shorter than the 4-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(0, true);
  if (headerLength > maxHeaderBytes) {
    throw new FrameError(`header length ${headerLength} exceeds the limit of ${maxHeaderBytes} bytes`);
  }
  if (4 + headerLength > bytes.length) {
    throw new FrameError(`header length ${headerLength} runs past the end of the ${bytes.length}-byte body`);
  }
  let header: unknown;
  try {
    header = JSON.parse(textDecoder.decode(bytes.subarray(4, 4 + headerLength)));
  } catch (error) {
    throw new FrameError(`header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  const list = (header as { tensors?: unknown })?.tensors;
  if (!Array.isArray(list)) throw new FrameError('header has no "tensors" array');
  if (list.length > maxTensors)
    throw new FrameError(`header lists ${list.length} tensors (at most ${maxTensors})`);
  const specs = list.map((entry, i) => {
    const { name, dtype, shape } = (entry ?? {}) as { name?: unknown; dtype?: unknown; shape?: unknown };
    if (typeof name !== 'string' || name.length === 0 || name.length > 200) {
      throw new FrameError(`tensors[${i}].name must be a non-empty string`);
    }
    if (dtype !== 'float32' && dtype !== 'int32') {
      throw new FrameError(
        `tensor "${name}" has dtype ${JSON.stringify(dtype)}; expected "float32" or "int32"`,
      );
    }
    if (
      !Array.isArray(shape) ||
      shape.length > maxRank ||
      shape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > 2 ** 31)
    ) {
      throw new FrameError(
        `tensor "${name}" has shape ${JSON.stringify(shape)}; expected up to ${maxRank} non-negative integers`,
      );
    }
    return { name, dtype: dtype as WireDType, shape: shape as number[] };
  });
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) throw new FrameError(`tensor "${s.name}" appears twice`);
    names.add(s.name);
  }
  const expected = 4 + headerLength + specs.reduce((n, s) => n + 4 * sizeOf(s.shape), 0);
  if (bytes.length !== expected) {
    throw new FrameError(
      `body is ${bytes.length} bytes but the header describes ${expected} (4 + ${headerLength} header bytes + ` +
        `${expected - 4 - headerLength} data bytes)`,
    );
  }
  let offset = 4 + headerLength;
  return specs.map((s) => {
    const n = sizeOf(s.shape);
    const copy = bytes.slice(offset, offset + 4 * n); // aligned copy
    offset += 4 * n;
    const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    let data: Float32Array | Int32Array;
    if (littleEndian)
      data = s.dtype === 'float32' ? new Float32Array(copy.buffer) : new Int32Array(copy.buffer);
    else {
      const dv = new DataView(copy.buffer);
      data = s.dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
      for (let i = 0; i < n; i++)
        data[i] = s.dtype === 'float32' ? dv.getFloat32(4 * i, true) : dv.getInt32(4 * i, true);
    }
    return { ...s, data };
  });
}

/** The JSON body of every error answer. */
export interface WireError {
  /** `field`: the request part at fault (`x`, `sigma`, `condition.<name>`, `body`, …), when there is one. */
  error: { code: string; message: string; field?: string };
}

/** What one conditioning input must look like, as a server advertises it. */
export interface WireConditionSpec {
  /** 'int32' or 'float32' (absent: either). */
  dtype?: WireDType;
  /** Shape of one row, without the batch axis ([] for one value per sample; absent: any). */
  rowShape?: number[];
  /** Class indices: integers in [0, classes). */
  classes?: number;
}

/** What `GET /v1/metadata` answers. */
export interface WireMetadata {
  protocol: string;
  metadata: import('@piflow/core').TeacherMetadata;
  maxBatchSize: number;
  maxBodyBytes: number;
  /** Specs of the conditioning inputs the server checks beyond their batch size (absent: none). */
  conditions?: Record<string, WireConditionSpec>;
}
