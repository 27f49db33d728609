import type { FastifyReply } from 'fastify';

/** An error answered to the client: status, code, a message that says what was wrong, and the field at fault. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** The request part at fault (`x`, `sigma`, `condition.labels`, `content-length`, …), when there is one. */
    readonly field?: string,
    /** Seconds for the Retry-After header (503 answers). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** A 400 Bad Request naming the field at fault. */
export function badRequest(field: string, message: string, code = 'bad_request'): HttpError {
  return new HttpError(400, code, message, field);
}

// characters of a path: up to a space, quote, bracket, comma or semicolon
const pathChars = '[^\\s"\'`()[\\]{}<>,;]*';
// A URL (kept, unless file://), or an absolute path: POSIX (/a/b, ~/a) or Windows (C:\a, \\server\share).
const urlOrAbsolutePath = new RegExp(
  [
    `\\b([A-Za-z][A-Za-z0-9+.-]*):\\/\\/${pathChars}`,
    `(?<![\\w.~/-])~?\\/${pathChars}`,
    `\\b[A-Za-z]:[\\\\/]${pathChars}`,
    `\\\\\\\\${pathChars}`,
  ].join('|'),
  'g',
);

/**
 * Replaces absolute paths (and file:// URLs) in `text` with their last segment, so answers never show where
 * the server keeps its files (`/srv/models/mnist/teacher` → `teacher`); other URLs are kept.
 */
export function redactPaths(text: string): string {
  return text.replace(urlOrAbsolutePath, (match, scheme: string | undefined) => {
    if (scheme !== undefined && scheme.toLowerCase() !== 'file') return match;
    const segments = match.split(/[\\/]+/).filter((s) => s.length > 0);
    return segments.at(-1) ?? match;
  });
}

/** Sends the protocol's JSON error `{ "error": { code, message, field? } }`. */
export function sendError(reply: FastifyReply, error: HttpError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter));
  // A body left unread would have to be drained before the next request: close the connection instead.
  if (!reply.request.raw.complete) reply.header('connection', 'close');
  const body: { code: string; message: string; field?: string } = {
    code: error.code,
    message: error.message,
  };
  if (error.field !== undefined) body.field = error.field;
  return reply.code(error.statusCode).type('application/json').send({ error: body });
}
