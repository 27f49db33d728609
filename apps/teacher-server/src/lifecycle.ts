import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { connectionsCheckingInterval, type ServerLimits } from './limits';

type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** The HTTP server under the Fastify app, its connections, and the shutdown with a deadline. */
export interface Lifecycle {
  /** Fastify's `serverFactory`: a Node HTTP server with the limits' timeouts. */
  serverFactory(handler: RequestHandler): Server;
  /** Whether `shutdown` has begun (answers then carry `Connection: close`; new requests get 503). */
  readonly closing: boolean;
  /**
   * Stops accepting connections, closes idle ones at once (including ones that never sent a full request),
   * lets requests in flight be answered, destroys the connections still open after shutdownTimeoutMs, and
   * resolves when the server is closed. Idempotent.
   */
  shutdown(app: FastifyInstance): Promise<void>;
}

export function createLifecycle(limits: ServerLimits): Lifecycle {
  let server: Server | undefined;
  let closing = false;
  let shutdownPromise: Promise<void> | undefined;
  // requests in flight per connection (a request is in flight from its headers until its answer is done)
  const sockets = new Map<Socket, { inFlight: number }>();

  // ends the connection once what was written to it is flushed (an answer just sent is not cut off)
  const closeSocket = (socket: Socket) => {
    if (socket.destroyed || socket.writableEnded) return;
    socket.once('finish', () => socket.destroy());
    socket.end();
  };
  const closeIdle = () => {
    server?.closeIdleConnections();
    for (const [socket, state] of sockets) if (state.inFlight === 0) closeSocket(socket);
  };

  return {
    serverFactory(handler) {
      server = createServer(
        {
          headersTimeout: limits.headersTimeoutMs,
          requestTimeout: limits.requestTimeoutMs,
          keepAliveTimeout: limits.keepAliveTimeoutMs,
          connectionsCheckingInterval: connectionsCheckingInterval(limits),
        },
        handler,
      );
      server.headersTimeout = limits.headersTimeoutMs;
      server.requestTimeout = limits.requestTimeoutMs;
      server.keepAliveTimeout = limits.keepAliveTimeoutMs;
      server.on('connection', (socket: Socket) => {
        sockets.set(socket, { inFlight: 0 });
        socket.once('close', () => sockets.delete(socket));
      });
      server.on('request', (request: IncomingMessage, response: ServerResponse) => {
        const state = sockets.get(request.socket);
        if (!state) return;
        state.inFlight++;
        response.once('close', () => {
          state.inFlight--;
          if (closing && state.inFlight === 0) setImmediate(closeIdle);
        });
      });
      return server;
    },
    get closing() {
      return closing;
    },
    shutdown(app) {
      shutdownPromise ??= (async () => {
        closing = true;
        const closed = app.close();
        closeIdle();
        // app.close() stops listening a little later: sweep up connections that are or become idle meanwhile
        const sweep = setInterval(closeIdle, 100);
        const deadline = setTimeout(() => {
          server?.closeAllConnections();
          for (const socket of sockets.keys()) socket.destroy();
        }, limits.shutdownTimeoutMs);
        try {
          await closed;
        } finally {
          clearTimeout(deadline);
          clearInterval(sweep);
        }
      })();
      return shutdownPromise;
    },
  };
}
