import { timingSafeEqual } from 'node:crypto';
import {
  assertNumber,
  type Condition,
  describeValue,
  InvalidArgumentError,
  type Teacher,
} from '@piflow/core';
import {
  decodeFrame,
  encodeFrame,
  FrameError,
  protocolVersion,
  tensorContentType,
  type WireMetadata,
  type WireTensor,
} from '@piflow/teachers';
import * as tf from '@tensorflow/tfjs-core';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

export interface TeacherServerOptions {
  /** The teacher to serve (any adapter). */
  teacher: Teacher;
  /** Interface to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Port (default 8400; 0 picks a free one). */
  port?: number;
  /** Require `Authorization: Bearer <token>` on metadata and velocity requests. */
  token?: string;
  /** Largest request body in bytes (default 64 MiB). */
  maxBodyBytes?: number;
  /** Largest batch per request (default 256). */
  maxBatchSize?: number;
  /** Velocity requests computed at the same time (default 1: tfjs runs one computation at a time). */
  concurrency?: number;
  /** Requests allowed to wait for a computation slot; beyond it the server answers 503 (default 64). */
  maxQueue?: number;
  /** Fastify logger option (default false). */
  logger?: boolean;
}

export interface TeacherServer {
  readonly app: FastifyInstance;
  /** Starts listening; resolves to the URL it serves at. */
  listen(): Promise<string>;
  /** Stops accepting connections, finishes the requests in flight, then resolves. */
  close(): Promise<void>;
  /** Queue state (also in GET /v1/health). */
  queue(): { active: number; waiting: number; capacity: number; served: number };
}

/** An error answered to the client: status, code and a message that says what was wrong. */
class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { code, message } });
}

/**
 * A Fastify app serving `teacher` over the piflow-teacher/1 protocol (see @piflow/teachers' README):
 * GET /v1/health, GET /v1/metadata, POST /v1/velocity. Every request is validated (frame, shapes, dtypes,
 * byte length, σ range, finite values, conditioning) before any compute; the body size is limited; at most
 * `concurrency` computations run and `maxQueue` wait, beyond which it answers 503.
 */
export function createTeacherServer(options: TeacherServerOptions): TeacherServer {
  const {
    teacher,
    host = '127.0.0.1',
    port = 8400,
    token,
    maxBodyBytes = 64 * 1024 * 1024,
    maxBatchSize = 256,
    concurrency = 1,
    maxQueue = 64,
    logger = false,
  } = options ?? ({} as TeacherServerOptions);
  if (!teacher || typeof teacher.velocity !== 'function' || typeof teacher.metadata !== 'object') {
    throw new InvalidArgumentError(
      'teacher',
      'a Teacher (velocity(x, sigma, condition) and metadata)',
      describeValue(teacher),
    );
  }
  if (typeof host !== 'string' || host.length === 0)
    throw new InvalidArgumentError('host', 'a host name or address', describeValue(host));
  assertNumber('port', port, { min: 0, max: 65535, integer: true });
  assertNumber('maxBodyBytes', maxBodyBytes, { min: 64, integer: true });
  assertNumber('maxBatchSize', maxBatchSize, { min: 1, integer: true });
  assertNumber('concurrency', concurrency, { min: 1, integer: true });
  assertNumber('maxQueue', maxQueue, { min: 0, integer: true });
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw new InvalidArgumentError('token', 'a non-empty string', describeValue(token));
  }
  const metadata = teacher.metadata;
  const conditionNames = metadata.conditionNames ?? [];
  const expectedToken = token ? Buffer.from(`Bearer ${token}`) : undefined;

  const app = Fastify({ logger, bodyLimit: maxBodyBytes, return503OnClosing: true });

  // Binary frames arrive as one Buffer (bounded by bodyLimit → 413).
  app.addContentTypeParser(tensorContentType, { parseAs: 'buffer' }, (_request, body, done) =>
    done(null, body),
  );

  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      404,
      'not_found',
      `No route ${request.method} ${request.url}; the routes are GET /v1/health, GET /v1/metadata and POST /v1/velocity.`,
    ),
  );
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _request, reply) => {
    if (error instanceof HttpError) {
      if (error.statusCode === 503) reply.header('retry-after', '1');
      return sendError(reply, error.statusCode, error.code, error.message);
    }
    const status = error.statusCode ?? 500;
    if (status === 413) {
      return sendError(
        reply,
        413,
        'body_too_large',
        `Request body exceeds the limit of ${maxBodyBytes} bytes.`,
      );
    }
    if (status === 415) {
      return sendError(
        reply,
        415,
        'unsupported_media_type',
        `POST /v1/velocity takes Content-Type ${tensorContentType}.`,
      );
    }
    if (status >= 400 && status < 500) return sendError(reply, status, 'bad_request', error.message);
    app.log.error(error);
    return sendError(reply, 500, 'teacher_failed', `The teacher failed: ${error.message}`);
  });

  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!expectedToken) return;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expectedToken.length || !timingSafeEqual(given, expectedToken)) {
      reply.header('www-authenticate', 'Bearer');
      return sendError(
        reply,
        401,
        'unauthorized',
        request.headers.authorization
          ? 'The bearer token is wrong.'
          : 'This server needs an Authorization: Bearer <token> header.',
      );
    }
  };

  // A counting semaphore with a bounded wait queue.
  let active = 0;
  let served = 0;
  const waiting: (() => void)[] = [];
  const acquire = async (): Promise<void> => {
    if (active < concurrency) {
      active++;
      return;
    }
    if (waiting.length >= maxQueue) {
      throw new HttpError(
        503,
        'queue_full',
        `The teacher is busy: ${active} running and ${waiting.length} waiting (limit ${maxQueue}). Retry later.`,
      );
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  const queue = () => ({ active, waiting: waiting.length, capacity: maxQueue, served });

  app.get('/v1/health', async () => ({ status: 'ok', protocol: protocolVersion, queue: queue() }));

  const wireMetadata: WireMetadata = { protocol: protocolVersion, metadata, maxBatchSize, maxBodyBytes };
  app.get('/v1/metadata', { onRequest: authorize }, async () => wireMetadata);

  const requireTensorBody = async (request: FastifyRequest, reply: FastifyReply) => {
    if (reply.sent) return;
    const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== tensorContentType) {
      return sendError(
        reply,
        415,
        'unsupported_media_type',
        `POST /v1/velocity takes Content-Type ${tensorContentType}, not ${type ? JSON.stringify(type) : 'none'}.`,
      );
    }
  };

  app.post('/v1/velocity', { onRequest: [authorize, requireTensorBody] }, async (request, reply) => {
    const body = request.body;
    if (!Buffer.isBuffer(body)) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        `POST /v1/velocity takes Content-Type ${tensorContentType}.`,
      );
    }
    const inputs = validate(body);
    await acquire();
    // let other requests be read (and queued or refused) between computations
    await new Promise((resolve) => setImmediate(resolve));
    let u: tf.Tensor | undefined;
    const tensors: tf.Tensor[] = [];
    try {
      const x = tf.tensor(inputs.x.data, inputs.x.shape, 'float32');
      const sigma = tf.tensor1d(inputs.sigma.data as Float32Array, 'float32');
      tensors.push(x, sigma);
      const condition: Record<string, tf.Tensor> = {};
      for (const [name, t] of Object.entries(inputs.condition)) {
        condition[name] = tf.tensor(t.data, t.shape, t.dtype);
        tensors.push(condition[name]);
      }
      try {
        u = await teacher.velocity(
          x,
          sigma,
          conditionNames.length > 0 ? (condition as Condition) : undefined,
        );
      } catch (error) {
        if (error instanceof InvalidArgumentError) throw new HttpError(400, 'bad_request', error.message);
        throw error;
      }
      const data = (await u.data()) as Float32Array;
      const frame = encodeFrame([{ name: 'u', dtype: 'float32', shape: u.shape, data }]);
      served++;
      return reply
        .type(tensorContentType)
        .send(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
    } finally {
      tf.dispose(tensors);
      u?.dispose();
      release();
    }
  });

  /** Everything about a request that can be checked without compute. */
  function validate(body: Buffer): {
    x: WireTensor;
    sigma: WireTensor;
    condition: Record<string, WireTensor>;
  } {
    let tensors: WireTensor[];
    try {
      tensors = decodeFrame(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    } catch (error) {
      if (error instanceof FrameError)
        throw new HttpError(400, 'bad_frame', `Malformed tensor frame: ${error.message}.`);
      throw error;
    }
    const byName = new Map(tensors.map((t) => [t.name, t]));
    const allowed = new Set(['x', 'sigma', ...conditionNames.map((n) => `condition.${n}`)]);
    for (const t of tensors) {
      if (!allowed.has(t.name)) {
        throw new HttpError(
          400,
          'bad_request',
          `Unexpected tensor "${t.name}"; this teacher takes ${[...allowed].map((n) => `"${n}"`).join(', ')}.`,
        );
      }
    }
    const x = byName.get('x');
    const sigma = byName.get('sigma');
    if (!x) throw new HttpError(400, 'bad_request', 'The frame has no tensor "x".');
    if (!sigma) throw new HttpError(400, 'bad_request', 'The frame has no tensor "sigma".');
    if (x.dtype !== 'float32')
      throw new HttpError(400, 'bad_request', `Tensor "x" must be float32, not ${x.dtype}.`);
    const batch = x.shape[0] ?? 0;
    const expectedRank = metadata.sampleShape
      ? metadata.sampleShape.length + 1
      : metadata.layout === 'vector'
        ? undefined // vector-layout teachers accept [B, …, C]
        : metadata.layout === 'tokens'
          ? 3
          : metadata.layout === 'image'
            ? 4
            : undefined;
    const shapeOk =
      x.shape.length >= 2 &&
      (expectedRank === undefined || x.shape.length === expectedRank) &&
      (!metadata.sampleShape || metadata.sampleShape.every((d, i) => x.shape[i + 1] === d));
    if (!shapeOk) {
      const expected = metadata.sampleShape
        ? `[B, ${metadata.sampleShape.join(', ')}]`
        : `rank ${expectedRank ?? '≥ 2'}`;
      throw new HttpError(
        400,
        'bad_request',
        `Tensor "x" has shape [${x.shape.join(', ')}]; this teacher takes ${expected}.`,
      );
    }
    if (batch < 1 || batch > maxBatchSize) {
      throw new HttpError(400, 'bad_request', `Batch size ${batch} is outside [1, ${maxBatchSize}].`);
    }
    if (sigma.dtype !== 'float32' || sigma.shape.length !== 1 || sigma.shape[0] !== batch) {
      throw new HttpError(
        400,
        'bad_request',
        `Tensor "sigma" must be float32 of shape [${batch}], not ${sigma.dtype} [${sigma.shape.join(', ')}].`,
      );
    }
    sigma.data.forEach((s, i) => {
      if (!Number.isFinite(s) || s < 0 || s > 1) {
        throw new HttpError(400, 'bad_request', `sigma[${i}] = ${s} is outside [0, 1].`);
      }
    });
    const badX = x.data.findIndex((v) => !Number.isFinite(v));
    if (badX >= 0)
      throw new HttpError(
        400,
        'bad_request',
        `Tensor "x" has a non-finite value (${x.data[badX]}) at flat index ${badX}.`,
      );
    const condition: Record<string, WireTensor> = {};
    for (const name of conditionNames) {
      const t = byName.get(`condition.${name}`);
      if (!t) {
        throw new HttpError(
          400,
          'bad_request',
          `The frame has no tensor "condition.${name}"; this teacher needs ${conditionNames.map((n) => `"condition.${n}"`).join(', ')}.`,
        );
      }
      if (t.shape[0] !== batch) {
        throw new HttpError(
          400,
          'bad_request',
          `Tensor "condition.${name}" has batch ${t.shape[0]}, x has ${batch}.`,
        );
      }
      if (t.dtype === 'float32') {
        const bad = t.data.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0)
          throw new HttpError(
            400,
            'bad_request',
            `Tensor "condition.${name}" has a non-finite value at flat index ${bad}.`,
          );
      }
      condition[name] = t;
    }
    return { x, sigma, condition };
  }

  return {
    app,
    queue,
    async listen() {
      return app.listen({ host, port });
    },
    async close() {
      await app.close();
    },
  };
}
