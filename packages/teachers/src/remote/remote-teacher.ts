import {
  assertNumber,
  type Condition,
  describeValue,
  InvalidArgumentError,
  PiflowError,
  type Sigma,
  sigmaValues,
  type Teacher,
  type TeacherMetadata,
} from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { assertTeacherCall } from '../teacher-inputs';
import {
  decodeFrame,
  encodeFrame,
  protocolVersion,
  tensorContentType,
  type WireConditionSpec,
  type WireError,
  type WireMetadata,
  type WireTensor,
} from './protocol';

/** A remote teacher's server answered with an error, or could not be reached after all retries. */
export class RemoteTeacherError extends PiflowError {
  override name = 'RemoteTeacherError';
  constructor(
    message: string,
    /** HTTP status of the last answer (undefined when no answer came: network error or timeout). */
    readonly status?: number,
    /** The server's error code (e.g. 'bad_request', 'queue_full'). */
    readonly code?: string,
    /** Attempts made. */
    readonly attempts = 1,
  ) {
    super(message);
  }
}

export interface RemoteTeacherOptions {
  /** Base URL of the teacher server, e.g. `http://127.0.0.1:8400`. */
  url: string;
  /** Bearer token, when the server requires one. */
  token?: string;
  /** Per-attempt timeout in ms (default 60 000). */
  timeoutMs?: number;
  /** Retries after the first attempt on network errors, timeouts, 408, 429, 502, 503 and 504 (default 4). */
  retries?: number;
  /** Base of the exponential backoff in ms: attempt n waits up to base·2ⁿ, full jitter, capped at 5 s (default 100). */
  retryDelayMs?: number;
  /** Largest batch per request (default and maximum: what the server advertises). */
  maxBatchSize?: number;
  /** How long calls are collected into one request, in ms (default 0: calls made in the same tick). */
  batchWindowMs?: number;
  /** The fetch function (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Random numbers in [0, 1) for the backoff jitter (default Math.random). */
  random?: () => number;
  /** Waits the backoff delay in ms (default: a timer); injected by tests to see the delays without waiting. */
  sleep?: (ms: number) => Promise<void>;
}

export interface RemoteTeacherStats {
  /** Velocity calls answered. */
  calls: number;
  /** HTTP requests sent (including retries). */
  requests: number;
  /** Retries made. */
  retries: number;
}

export interface RemoteTeacher extends Teacher {
  readonly url: string;
  /** What the server advertised. */
  readonly server: WireMetadata;
  readonly stats: RemoteTeacherStats;
  dispose(): void;
}

interface PendingCall {
  rows: number;
  sampleSize: number;
  x: Float32Array;
  sigma: Float32Array;
  condition: {
    name: string;
    dtype: 'float32' | 'int32';
    rowShape: number[];
    data: Float32Array | Int32Array;
  }[];
  resolve: (u: Float32Array) => void;
  reject: (error: unknown) => void;
}

const retryableStatus = new Set([408, 429, 502, 503, 504]);

function describeAnswer(
  status: number,
  statusText: string,
  body: string,
): { message: string; code?: string } {
  try {
    const parsed = JSON.parse(body) as Partial<WireError>;
    if (parsed.error && typeof parsed.error.message === 'string') {
      return { message: `${status} ${statusText}: ${parsed.error.message}`, code: parsed.error.code };
    }
  } catch {
    // not JSON: quote the text
  }
  const text = body.length > 300 ? `${body.slice(0, 300)}…` : body;
  return { message: `${status} ${statusText}${text ? `: ${text.trim()}` : ''}` };
}

/**
 * Checks a conditioning input against the spec its server advertised (dtype, row shape, class range), so a
 * bad call fails here with an InvalidArgumentError instead of a 400 from the server.
 */
function assertAdvertisedCondition(
  name: string,
  dtype: string,
  shape: readonly number[],
  data: ArrayLike<number>,
  spec: WireConditionSpec,
): void {
  const argument = `condition.${name}`;
  const rowShape = Array.isArray(spec.rowShape) ? spec.rowShape : undefined;
  const article = spec.dtype === 'int32' ? 'an int32' : spec.dtype === 'float32' ? 'a float32' : 'a';
  const expected = `${article} tensor of shape [B${rowShape?.map((d) => `, ${d}`).join('') ?? ', …'}]`;
  const received = `${dtype} [${shape.join(', ')}]`;
  if (spec.dtype !== undefined && dtype !== spec.dtype)
    throw new InvalidArgumentError(argument, expected, received);
  if (rowShape && (shape.length !== rowShape.length + 1 || rowShape.some((d, i) => shape[i + 1] !== d))) {
    throw new InvalidArgumentError(argument, expected, received);
  }
  const classes = spec.classes;
  if (typeof classes === 'number') {
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= classes) {
        throw new InvalidArgumentError(
          argument,
          `class indices in [0, ${classes}) (the server's class count)`,
          `${v} at flat index ${i}`,
        );
      }
    }
  }
}

/**
 * A teacher served over HTTP by a piflow teacher server (or anything speaking `piflow-teacher/1`, see the
 * README). It reads the server's metadata first, so it knows the layout, shift, guidance mode and
 * conditioning inputs; validates calls locally; batches calls made together into one request (split at the
 * server's batch limit); sends float32 tensors as binary frames; and retries transient failures with
 * exponential backoff. Errors say what the server answered.
 */
export async function createRemoteTeacher(options: RemoteTeacherOptions): Promise<RemoteTeacher> {
  const {
    url,
    token,
    timeoutMs = 60_000,
    retries = 4,
    retryDelayMs = 100,
    batchWindowMs = 0,
    random = Math.random,
    sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  } = options ?? ({} as RemoteTeacherOptions);
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) {
    throw new InvalidArgumentError('url', 'an http(s):// URL of a teacher server', describeValue(url));
  }
  assertNumber('timeoutMs', timeoutMs, { min: 1 });
  assertNumber('retries', retries, { min: 0, integer: true });
  assertNumber('retryDelayMs', retryDelayMs, { min: 0 });
  assertNumber('batchWindowMs', batchWindowMs, { min: 0 });
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw new InvalidArgumentError('token', 'a non-empty string', describeValue(token));
  }
  const fetchFunction = options.fetch ?? globalThis.fetch;
  if (typeof fetchFunction !== 'function') {
    throw new InvalidArgumentError(
      'fetch',
      'a fetch function (none is global here)',
      describeValue(fetchFunction),
    );
  }
  const base = url.replace(/\/+$/, '');
  const stats: RemoteTeacherStats = { calls: 0, requests: 0, retries: 0 };
  const authorization: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};

  const request = async (path: string, init: RequestInit): Promise<Response> => {
    let lastMessage = '';
    let lastStatus: number | undefined;
    let lastCode: string | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        stats.retries++;
        const delay = Math.min(5000, retryDelayMs * 2 ** (attempt - 1)) * random();
        await sleep(delay);
      }
      stats.requests++;
      let response: Response;
      try {
        response = await fetchFunction(`${base}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        lastMessage =
          (error as Error).name === 'TimeoutError'
            ? `no answer within ${timeoutMs} ms`
            : `${(error as Error).message}${cause?.code ? ` (${cause.code})` : cause?.message ? ` (${cause.message})` : ''}`;
        lastStatus = undefined;
        lastCode = undefined;
        continue;
      }
      if (response.ok) return response;
      const answer = describeAnswer(
        response.status,
        response.statusText,
        await response.text().catch(() => ''),
      );
      lastMessage = answer.message;
      lastStatus = response.status;
      lastCode = answer.code;
      if (!retryableStatus.has(response.status)) {
        throw new RemoteTeacherError(
          `Remote teacher ${base}${path} answered ${answer.message}`,
          lastStatus,
          lastCode,
          attempt + 1,
        );
      }
    }
    throw new RemoteTeacherError(
      `Remote teacher ${base}${path} failed after ${retries + 1} attempts; last: ${lastMessage}`,
      lastStatus,
      lastCode,
      retries + 1,
    );
  };

  const metadataResponse = await request('/v1/metadata', { method: 'GET', headers: authorization });
  const server = (await metadataResponse.json()) as WireMetadata;
  if (server?.protocol !== protocolVersion || typeof server.metadata !== 'object') {
    throw new RemoteTeacherError(
      `Remote teacher ${base} speaks ${JSON.stringify(server?.protocol)}, not ${protocolVersion}.`,
      metadataResponse.status,
    );
  }
  const maxBatchSize = Math.min(options.maxBatchSize ?? server.maxBatchSize, server.maxBatchSize);
  assertNumber('maxBatchSize', maxBatchSize, { min: 1, integer: true });
  const advertised: Record<string, WireConditionSpec | undefined> =
    server.conditions && typeof server.conditions === 'object' ? server.conditions : {};
  const metadata: TeacherMetadata = Object.freeze({
    ...server.metadata,
    description: `remote: ${server.metadata.description ?? 'teacher'} at ${base}`,
  });

  const sendChunk = async (calls: PendingCall[], start: number, rows: number): Promise<Float32Array> => {
    // rows [start, start + rows) of the concatenation of `calls`
    const first = calls[0]!;
    const x = new Float32Array(rows * first.sampleSize);
    const sigma = new Float32Array(rows);
    const condition = first.condition.map((c) => {
      const rowSize = c.rowShape.reduce((a, b) => a * b, 1);
      return {
        ...c,
        rowSize,
        out: c.dtype === 'float32' ? new Float32Array(rows * rowSize) : new Int32Array(rows * rowSize),
      };
    });
    let row = 0;
    let global = 0;
    for (const call of calls) {
      for (let r = 0; r < call.rows; r++, global++) {
        if (global < start || global >= start + rows) continue;
        x.set(call.x.subarray(r * call.sampleSize, (r + 1) * call.sampleSize), row * call.sampleSize);
        sigma[row] = call.sigma[r]!;
        call.condition.forEach((c, i) => {
          const target = condition[i]!;
          target.out.set(c.data.subarray(r * target.rowSize, (r + 1) * target.rowSize), row * target.rowSize);
        });
        row++;
      }
    }
    const tensors: WireTensor[] = [
      { name: 'x', dtype: 'float32', shape: [rows, ...sampleShapeOf(first)], data: x },
      { name: 'sigma', dtype: 'float32', shape: [rows], data: sigma },
      ...condition.map((c) => ({
        name: `condition.${c.name}`,
        dtype: c.dtype,
        shape: [rows, ...c.rowShape],
        data: c.out,
      })),
    ];
    const response = await request('/v1/velocity', {
      method: 'POST',
      headers: { ...authorization, 'content-type': tensorContentType },
      body: encodeFrame(tensors),
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    let decoded: WireTensor[];
    try {
      decoded = decodeFrame(bytes);
    } catch (error) {
      throw new RemoteTeacherError(
        `Remote teacher ${base} sent a malformed answer: ${(error as Error).message}`,
        response.status,
      );
    }
    const u = decoded.find((t) => t.name === 'u');
    if (u?.dtype !== 'float32' || u.data.length !== x.length) {
      throw new RemoteTeacherError(
        `Remote teacher ${base} answered without a float32 "u" of ${x.length} values`,
        response.status,
      );
    }
    return u.data as Float32Array;
  };
  const sampleShapes = new WeakMap<PendingCall, number[]>();
  const sampleShapeOf = (call: PendingCall) => sampleShapes.get(call)!;

  let pending: PendingCall[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const calls = pending;
    pending = [];
    const groups = new Map<string, PendingCall[]>();
    for (const call of calls) {
      const key = JSON.stringify([
        sampleShapeOf(call),
        call.condition.map((c) => [c.name, c.dtype, c.rowShape]),
      ]);
      const group = groups.get(key) ?? [];
      group.push(call);
      groups.set(key, group);
    }
    for (const group of groups.values()) {
      const total = group.reduce((n, c) => n + c.rows, 0);
      const chunks: Promise<Float32Array>[] = [];
      for (let start = 0; start < total; start += maxBatchSize) {
        chunks.push(sendChunk(group, start, Math.min(maxBatchSize, total - start)));
      }
      Promise.all(chunks).then(
        (parts) => {
          const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
          let offset = 0;
          for (const p of parts) {
            all.set(p, offset);
            offset += p.length;
          }
          offset = 0;
          for (const call of group) {
            const n = call.rows * call.sampleSize;
            call.resolve(all.slice(offset, offset + n));
            offset += n;
          }
        },
        (error) => {
          for (const call of group) call.reject(error);
        },
      );
    }
  };

  let disposed = false;
  return {
    url: base,
    server,
    metadata,
    stats,
    async velocity(x: tf.Tensor, sigma: Sigma, condition?: Condition): Promise<tf.Tensor> {
      if (disposed) throw new PiflowError(`Remote teacher ${base} was disposed.`);
      assertTeacherCall(x, sigma, condition, metadata);
      const batch = x.shape[0]!;
      const names = metadata.conditionNames ?? [];
      const xData = (await x.data()) as Float32Array;
      const conditionData = await Promise.all(
        names.map(async (name) => {
          const t = condition![name]!;
          if (t.dtype !== 'float32' && t.dtype !== 'int32') {
            throw new InvalidArgumentError(
              `condition.${name}`,
              'a float32 or int32 tensor',
              describeValue(t),
            );
          }
          const data = (await t.data()) as Float32Array | Int32Array;
          const spec = advertised[name];
          if (spec && typeof spec === 'object') assertAdvertisedCondition(name, t.dtype, t.shape, data, spec);
          return {
            name,
            dtype: t.dtype as 'float32' | 'int32',
            rowShape: t.shape.slice(1),
            data,
          };
        }),
      );
      const sigmas = sigmaValues(sigma, batch);
      const u = await new Promise<Float32Array>((resolve, reject) => {
        const call: PendingCall = {
          rows: batch,
          sampleSize: x.size / Math.max(batch, 1),
          x: xData,
          sigma: sigmas,
          condition: conditionData,
          resolve,
          reject,
        };
        sampleShapes.set(call, x.shape.slice(1));
        pending.push(call);
        if (!scheduled) {
          scheduled = true;
          setTimeout(flush, batchWindowMs);
        }
      });
      stats.calls++;
      return tf.tensor(u, x.shape, 'float32');
    },
    dispose() {
      disposed = true;
    },
  };
}
