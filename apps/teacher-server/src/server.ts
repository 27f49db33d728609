import { assertNumber, describeValue, InvalidArgumentError, type Teacher } from '@piflow/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { createBodyBudget } from './body-budget';
import { createComputeQueue, type QueueState } from './compute-queue';
import { type ConditionSpec, resolveConditionSpecs, type TeacherMetadataWithConditions } from './conditions';
import { createLifecycle } from './lifecycle';
import { resolveLimits, type ServerLimits } from './limits';
import { publicMetadata } from './public-metadata';
import { registerRoutes } from './routes';

export interface TeacherServerOptions extends Partial<ServerLimits> {
  /** The teacher to serve (any adapter). */
  teacher: Teacher;
  /** Interface to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Port (default 8400; 0 picks a free one). */
  port?: number;
  /** Require `Authorization: Bearer <token>` on metadata and velocity requests. */
  token?: string;
  /**
   * What the conditioning inputs must look like, by name, e.g. `{ labels: { classes: 10 } }`; refines the
   * teacher's own `metadata.conditions` and the `labels` convention (int32 [B]). See ConditionSpec.
   */
  conditions?: Readonly<Record<string, ConditionSpec>>;
  /**
   * The teacher's description in GET /v1/metadata (default: the teacher's own, with absolute paths shortened
   * to their last segment).
   */
  description?: string;
  /** Fastify logger option (default false). */
  logger?: boolean;
}

export interface TeacherServer {
  readonly app: FastifyInstance;
  /** Starts listening; resolves to the URL it serves at. */
  listen(): Promise<string>;
  /**
   * Stops accepting connections, closes idle ones at once, answers the requests in flight, destroys the
   * connections still open after `shutdownTimeoutMs`, then resolves.
   */
  close(): Promise<void>;
  /** Queue state (also in GET /v1/health). */
  queue(): QueueState;
  /** Bytes of request bodies held now and the budget for them (`maxBufferedBytes`). */
  buffered(): { used: number; capacity: number };
}

/**
 * A Fastify app serving `teacher` over the piflow-teacher/1 protocol (see @piflow/teachers' README):
 * GET /v1/health, GET /v1/metadata, POST /v1/velocity. Every request is validated (frame, shapes, dtypes,
 * byte length, σ range, finite values, conditioning and class indices) before any compute; bodies are
 * limited per request and across requests; headers, bodies and idle connections time out; at most
 * `concurrency` computations run and `maxQueue` wait, beyond which it answers 503; `close()` has a deadline.
 */
export function createTeacherServer(options: TeacherServerOptions): TeacherServer {
  const {
    teacher,
    host = '127.0.0.1',
    port = 8400,
    token,
    conditions,
    description,
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
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) {
    throw new InvalidArgumentError('token', 'a non-empty string', describeValue(token));
  }
  if (description !== undefined && typeof description !== 'string') {
    throw new InvalidArgumentError('description', 'a string', describeValue(description));
  }
  const limits = resolveLimits(options);
  const metadata = teacher.metadata as TeacherMetadataWithConditions;
  const conditionSpecs = resolveConditionSpecs(metadata, conditions);

  const lifecycle = createLifecycle(limits);
  const app = Fastify({
    logger,
    bodyLimit: limits.maxBodyBytes,
    return503OnClosing: false, // the routes answer 503 in the protocol's JSON while shutting down
    serverFactory: (handler) => lifecycle.serverFactory(handler),
    // Node's 408 (headers or request timeout) and other client errors, in the protocol's JSON
    clientErrorHandler: (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, text, code, message] =
        error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'request_timeout', 'The request did not arrive in time.']
          : error.code === 'HPE_HEADER_OVERFLOW'
            ? [
                431,
                'Request Header Fields Too Large',
                'headers_too_large',
                'The request headers are too large.',
              ]
            : [400, 'Bad Request', 'bad_request', 'The request is not valid HTTP/1.1.'];
      const body = JSON.stringify({ error: { code, message } });
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
  });
  const queue = createComputeQueue(limits.concurrency, limits.maxQueue);
  const budget = createBodyBudget(limits.maxBufferedBytes);
  const ready: Promise<void> = registerRoutes(app, {
    teacher,
    limits,
    metadata: publicMetadata(metadata, {
      description,
      conditions: conditionSpecs,
      maxBatchSize: limits.maxBatchSize,
      maxBodyBytes: limits.maxBodyBytes,
    }),
    validation: { metadata, conditions: conditionSpecs, maxBatchSize: limits.maxBatchSize },
    queue,
    budget,
    token,
    closing: () => lifecycle.closing,
  });
  ready.catch(() => {}); // reported by listen()

  return {
    app,
    queue: () => queue.state(),
    buffered: () => ({ used: budget.used, capacity: budget.capacity }),
    async listen() {
      await ready;
      return app.listen({ host, port });
    },
    close() {
      return lifecycle.shutdown(app);
    },
  };
}
