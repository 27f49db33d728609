import { assertNumber, InvalidArgumentError } from '@piflow/core';

/** Sizes, timeouts and queue bounds of a teacher server; every field has a default (see `defaultLimits`). */
export interface ServerLimits {
  /** Largest request body in bytes (default 64 MiB); larger ones get 413. */
  maxBodyBytes: number;
  /**
   * Bytes of request bodies held at once across all uploads in progress, queued and being computed
   * (default 4 × maxBodyBytes). An upload that would go over it gets 503 with Retry-After: a declared
   * Content-Length is reserved before any byte is read, chunked bodies are counted as they arrive.
   */
  maxBufferedBytes: number;
  /** Largest batch per request (default 256). */
  maxBatchSize: number;
  /** Velocity requests computed at the same time (default 1: tfjs runs one computation at a time). */
  concurrency: number;
  /** Requests allowed to wait for a computation slot; beyond it the server answers 503 (default 64). */
  maxQueue: number;
  /**
   * Time to receive a request's headers, in ms (default 10 000); it also bounds how long a new connection
   * may stay silent. Then 408 and the connection is closed.
   */
  headersTimeoutMs: number;
  /** Time to receive a whole request, headers and body, in ms (default 120 000). Then 408 and close. */
  requestTimeoutMs: number;
  /** Longest pause while a body arrives, in ms (default 10 000): a stalled upload gets 408 and is closed. */
  bodyTimeoutMs: number;
  /**
   * How long a keep-alive connection may stay idle after an answer, in ms (default 65 000: above the 60 s
   * idle timeout of common load balancers, so they never reuse a connection the server is closing).
   */
  keepAliveTimeoutMs: number;
  /**
   * After `close()` (SIGTERM/SIGINT): how long requests in flight get to be answered before their connections
   * are destroyed, in ms (default 5 000). Idle connections are closed at once.
   */
  shutdownTimeoutMs: number;
}

export const defaultLimits = {
  maxBodyBytes: 64 * 1024 * 1024,
  maxBatchSize: 256,
  concurrency: 1,
  maxQueue: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  bodyTimeoutMs: 10_000,
  keepAliveTimeoutMs: 65_000,
  shutdownTimeoutMs: 5_000,
} as const satisfies Omit<ServerLimits, 'maxBufferedBytes'>;

/** maxBufferedBytes when not given: room for this many largest bodies at once. */
export const defaultBufferedBodies = 4;

const day = 24 * 60 * 60 * 1000;

/** Fills in the defaults and checks every limit (InvalidArgumentError naming the option). */
export function resolveLimits(options: Partial<ServerLimits>): ServerLimits {
  const pick = <K extends keyof ServerLimits>(key: K, fallback: number): number =>
    options[key] === undefined ? fallback : (options[key] as number);
  const maxBodyBytes = pick('maxBodyBytes', defaultLimits.maxBodyBytes);
  assertNumber('maxBodyBytes', maxBodyBytes, { min: 64, integer: true });
  const limits: ServerLimits = {
    maxBodyBytes,
    maxBufferedBytes: pick('maxBufferedBytes', defaultBufferedBodies * maxBodyBytes),
    maxBatchSize: pick('maxBatchSize', defaultLimits.maxBatchSize),
    concurrency: pick('concurrency', defaultLimits.concurrency),
    maxQueue: pick('maxQueue', defaultLimits.maxQueue),
    headersTimeoutMs: pick('headersTimeoutMs', defaultLimits.headersTimeoutMs),
    requestTimeoutMs: pick('requestTimeoutMs', defaultLimits.requestTimeoutMs),
    bodyTimeoutMs: pick('bodyTimeoutMs', defaultLimits.bodyTimeoutMs),
    keepAliveTimeoutMs: pick('keepAliveTimeoutMs', defaultLimits.keepAliveTimeoutMs),
    shutdownTimeoutMs: pick('shutdownTimeoutMs', defaultLimits.shutdownTimeoutMs),
  };
  assertNumber('maxBufferedBytes', limits.maxBufferedBytes, { min: maxBodyBytes, integer: true });
  assertNumber('maxBatchSize', limits.maxBatchSize, { min: 1, integer: true });
  assertNumber('concurrency', limits.concurrency, { min: 1, integer: true });
  assertNumber('maxQueue', limits.maxQueue, { min: 0, integer: true });
  for (const key of [
    'headersTimeoutMs',
    'requestTimeoutMs',
    'bodyTimeoutMs',
    'keepAliveTimeoutMs',
  ] as const) {
    assertNumber(key, limits[key], { min: 1, max: day, integer: true });
  }
  assertNumber('shutdownTimeoutMs', limits.shutdownTimeoutMs, { min: 0, max: day, integer: true });
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new InvalidArgumentError(
      'headersTimeoutMs',
      `at most requestTimeoutMs (${limits.requestTimeoutMs})`,
      String(limits.headersTimeoutMs),
    );
  }
  return limits;
}

/**
 * How often Node checks connections against headersTimeoutMs and requestTimeoutMs (its default, 30 s, would
 * let a 10 s timeout run to 40 s): a quarter of the shorter one, between 100 ms and 5 s.
 */
export function connectionsCheckingInterval(limits: ServerLimits): number {
  return Math.min(
    5000,
    Math.max(100, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)),
  );
}
