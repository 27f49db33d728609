import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './http-error';
import type { ServerLimits } from './limits';

/** One request's share of a BodyBudget: what it reserved, given back at once by `release()`. */
export interface BodyHold {
  /** Bytes held now. */
  readonly held: number;
  /** Reserves `bytes` more; false (and nothing reserved) when the budget has not that much left. */
  reserve(bytes: number): boolean;
  /** Gives back everything held; later `reserve` calls fail. Idempotent. */
  release(): void;
}

/** Bytes of request bodies the server holds at once, shared by all requests. */
export interface BodyBudget {
  readonly capacity: number;
  /** Bytes reserved now, across requests. */
  readonly used: number;
  /** A new, empty hold for one request. */
  open(): BodyHold;
}

export function createBodyBudget(capacity: number): BodyBudget {
  let used = 0;
  return {
    capacity,
    get used() {
      return used;
    },
    open() {
      let held = 0;
      let released = false;
      return {
        get held() {
          return held;
        },
        reserve(bytes) {
          if (released || used + bytes > capacity) return false;
          used += bytes;
          held += bytes;
          return true;
        },
        release() {
          if (released) return;
          released = true;
          used -= held;
          held = 0;
        },
      };
    },
  };
}

type ParserDone = (error: Error | null, body?: Buffer) => void;

/**
 * A Fastify content-type parser that reads a request body into one Buffer under the server's limits:
 * 413 when the declared or received length exceeds maxBodyBytes; 503 (Retry-After) when the body does not
 * fit in what is left of the shared budget (the declared Content-Length is reserved before any byte is read,
 * chunked bodies chunk by chunk); 408 when no byte arrives for bodyTimeoutMs; 400 when the connection closes
 * before the body is complete. The request's hold (from `holdOf`) is released when its answer is done.
 */
export function createTensorBodyParser(
  limits: Pick<ServerLimits, 'maxBodyBytes' | 'bodyTimeoutMs'>,
  budget: BodyBudget,
  holdOf: (request: FastifyRequest) => BodyHold,
) {
  const { maxBodyBytes, bodyTimeoutMs } = limits;
  const tooLarge = (bytes: number, what: string) =>
    new HttpError(
      413,
      'body_too_large',
      `Request body of ${what}${bytes} bytes exceeds the limit of ${maxBodyBytes} bytes.`,
      'body',
    );
  const noRoom = (bytes: number) =>
    new HttpError(
      503,
      'uploads_full',
      `The server already holds ${budget.used} of its ${budget.capacity} bytes for request bodies; ` +
        `${bytes} more do not fit. Retry later.`,
      'body',
      1,
    );

  return (request: FastifyRequest, payload: IncomingMessage, done: ParserDone): void => {
    const hold = holdOf(request);
    const header = request.headers['content-length'];
    const declared = header === undefined ? undefined : Number(header);
    if (declared !== undefined) {
      if (declared > maxBodyBytes) {
        done(tooLarge(declared, ''));
        return;
      }
      if (!hold.reserve(declared)) {
        done(noRoom(declared));
        return;
      }
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let finished = false;
    const timer = setTimeout(() => {
      finish(
        new HttpError(
          408,
          'body_timeout',
          `No part of the request body arrived for ${bodyTimeoutMs} ms (${received} of ${
            declared ?? 'an unknown number of'
          } bytes received).`,
          'body',
        ),
      );
    }, bodyTimeoutMs);

    const finish = (error: HttpError | null, body?: Buffer) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      payload.off('data', onData);
      payload.off('end', onEnd);
      payload.off('error', onAbort);
      payload.off('aborted', onAbort);
      payload.off('close', onClose);
      chunks.length = 0;
      if (error) {
        hold.release();
        done(error);
      } else done(null, body);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBodyBytes) return finish(tooLarge(received, 'at least '));
      if (declared === undefined && !hold.reserve(chunk.length)) return finish(noRoom(chunk.length));
      chunks.push(chunk);
      timer.refresh();
    };
    const onEnd = () => {
      if (declared !== undefined && received !== declared) {
        return finish(
          new HttpError(
            400,
            'bad_request',
            `The body has ${received} bytes but Content-Length says ${declared}.`,
            'content-length',
          ),
        );
      }
      finish(null, Buffer.concat(chunks, received));
    };
    const onAbort = () =>
      finish(
        new HttpError(
          400,
          'body_incomplete',
          `The connection closed after ${received} bytes of the body.`,
          'body',
        ),
      );
    const onClose = () => {
      if (!payload.complete) onAbort();
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onAbort);
    payload.on('aborted', onAbort);
    payload.on('close', onClose);
    payload.resume();
  };
}
