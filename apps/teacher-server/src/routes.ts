import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type Condition, InvalidArgumentError, type Teacher } from '@piflow/core';
import { encodeFrame, tensorContentType } from '@piflow/teachers';
import * as tf from '@tensorflow/tfjs-core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type BodyBudget, type BodyHold, createTensorBodyParser } from './body-budget';
import type { ComputeQueue } from './compute-queue';
import { HttpError, redactPaths, sendError } from './http-error';
import type { ServerLimits } from './limits';
import type { PublicMetadata } from './public-metadata';
import { type ValidationContext, validateVelocityRequest } from './request-validation';

export interface RouteContext {
  teacher: Teacher;
  limits: ServerLimits;
  /** What GET /v1/metadata answers. */
  metadata: PublicMetadata;
  validation: ValidationContext;
  queue: ComputeQueue;
  budget: BodyBudget;
  token?: string;
  /** Whether the server is shutting down. */
  closing(): boolean;
}

const routeList = 'the routes are GET /v1/health, GET /v1/metadata and POST /v1/velocity';

/** Error handler, 404s, shutdown answers and bearer auth: what every route shares. */
function registerCommon(app: FastifyInstance, context: RouteContext): void {
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new HttpError(404, 'not_found', `No route ${request.method} ${request.url}; ${routeList}.`),
    ),
  );
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    if (error instanceof HttpError) return sendError(reply, error);
    const status = error.statusCode ?? 500;
    if (status === 413) {
      return sendError(
        reply,
        new HttpError(
          413,
          'body_too_large',
          `Request body exceeds the limit of ${context.limits.maxBodyBytes} bytes.`,
          'body',
        ),
      );
    }
    if (status === 415) {
      return sendError(
        reply,
        new HttpError(
          415,
          'unsupported_media_type',
          `POST /v1/velocity takes Content-Type ${tensorContentType}.`,
          'content-type',
        ),
      );
    }
    if (status >= 400 && status < 500) {
      return sendError(reply, new HttpError(status, 'bad_request', redactPaths(error.message)));
    }
    app.log.error(error);
    return sendError(
      reply,
      new HttpError(500, 'teacher_failed', `The teacher failed: ${redactPaths(error.message)}`),
    );
  });
  // While shutting down: new requests get 503 (a balancer passes them on), answers close their connection.
  app.addHook('onRequest', async (_request, reply) => {
    if (!context.closing()) return;
    reply.header('connection', 'close');
    return sendError(
      reply,
      new HttpError(
        503,
        'shutting_down',
        'The server is shutting down. Retry on another server.',
        undefined,
        1,
      ),
    );
  });
  app.addHook('onSend', async (_request, reply) => {
    if (context.closing()) reply.header('connection', 'close');
  });
}

function authorizer(token: string | undefined) {
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (!expected || reply.sent) return;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      reply.header('www-authenticate', 'Bearer');
      return sendError(
        reply,
        new HttpError(
          401,
          'unauthorized',
          request.headers.authorization
            ? 'The bearer token is wrong.'
            : 'This server needs an Authorization: Bearer <token> header.',
          'authorization',
        ),
      );
    }
  };
}

async function requireTensorBody(request: FastifyRequest, reply: FastifyReply) {
  if (reply.sent) return;
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== tensorContentType) {
    return sendError(
      reply,
      new HttpError(
        415,
        'unsupported_media_type',
        `POST /v1/velocity takes Content-Type ${tensorContentType}, not ${type ? JSON.stringify(type) : 'none'}.`,
        'content-type',
      ),
    );
  }
}

/** Runs the teacher on validated inputs; returns the answer frame. */
async function computeVelocity(
  teacher: Teacher,
  inputs: ReturnType<typeof validateVelocityRequest>,
  conditionNames: readonly string[],
): Promise<Buffer> {
  const tensors: tf.Tensor[] = [];
  let u: tf.Tensor | undefined;
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
      u = await teacher.velocity(x, sigma, conditionNames.length > 0 ? (condition as Condition) : undefined);
    } catch (error) {
      if (error instanceof InvalidArgumentError) {
        throw new HttpError(400, 'bad_request', redactPaths(error.message), error.argument);
      }
      throw error;
    }
    const data = (await u.data()) as Float32Array;
    const frame = encodeFrame([{ name: 'u', dtype: 'float32', shape: u.shape, data }]);
    return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  } finally {
    tf.dispose(tensors);
    u?.dispose();
  }
}

/**
 * GET /v1/health, GET /v1/metadata and POST /v1/velocity (piflow-teacher/1): bodies read under the shared
 * budget, validated before they wait for a computation slot, computed at most `concurrency` at a time.
 */
export async function registerRoutes(app: FastifyInstance, context: RouteContext): Promise<void> {
  const { teacher, queue, budget, limits, validation } = context;
  const conditionNames = validation.metadata.conditionNames ?? [];
  const authorize = authorizer(context.token);
  // Only the velocity route parses bodies: other routes and 404s never read one.
  app.removeAllContentTypeParsers();
  registerCommon(app, context);

  app.get('/v1/health', async () => ({
    status: 'ok',
    protocol: context.metadata.protocol,
    queue: queue.state(),
    buffered: { bytes: budget.used, capacity: budget.capacity },
  }));
  app.get('/v1/metadata', { onRequest: authorize }, async () => context.metadata);

  await app.register(async (scope) => {
    const holds = new WeakMap<IncomingMessage, BodyHold>();
    const holdOf = (request: FastifyRequest) => {
      let hold = holds.get(request.raw);
      if (!hold) {
        hold = budget.open();
        holds.set(request.raw, hold);
      }
      return hold;
    };
    scope.addContentTypeParser(tensorContentType, createTensorBodyParser(limits, budget, holdOf));
    // the body's bytes stay reserved until its answer is sent or its connection is gone
    const holdBody = async (request: FastifyRequest, reply: FastifyReply) => {
      const hold = holdOf(request);
      reply.raw.once('close', () => hold.release());
    };

    scope.post(
      '/v1/velocity',
      { onRequest: [authorize, requireTensorBody, holdBody] },
      async (request, reply) => {
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const inputs = validateVelocityRequest(
          new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
          validation,
        );
        request.body = undefined; // the decoded tensors are copies: let the raw body go
        await queue.acquire();
        try {
          // let other requests be read (and queued or refused) between computations
          await new Promise((resolve) => setImmediate(resolve));
          if (request.raw.socket?.destroyed) return reply.hijack(); // the client is gone: skip the work
          const frame = await computeVelocity(teacher, inputs, conditionNames);
          queue.served();
          return reply.type(tensorContentType).send(frame);
        } finally {
          queue.release();
        }
      },
    );
  });
}
