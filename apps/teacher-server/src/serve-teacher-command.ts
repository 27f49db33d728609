import { resolveBackend } from '@piflow/backend-node';
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import type { ConditionSpec } from './conditions';
import { redactPaths } from './http-error';
import { defaultBufferedBodies, defaultLimits } from './limits';
import { createTeacherServer } from './server';
import { createTeacherSpecRegistry, type TeacherSpecRegistry } from './teacher-specs';

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isInteger(n) || n < min || n > max) {
      throw new CommanderArgumentError(
        `${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}.`,
      );
    }
    return n;
  };
}

/** `--classes 10` (the `labels` input) or `--classes name=10`; repeatable. */
function classCount(value: string, previous: Record<string, ConditionSpec> = {}) {
  const match = /^(?:([A-Za-z_][\w.-]*)=)?(\d+)$/.exec(value.trim());
  const n = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isSafeInteger(n) || n < 1) {
    throw new CommanderArgumentError(
      `--classes takes a class count like 10 (for the "labels" input) or name=10, got ${JSON.stringify(value)}.`,
    );
  }
  return { ...previous, [match[1] ?? 'labels']: { classes: n } };
}

const seconds = (ms: number) => `${ms / 1000} s`;

/**
 * Makes `name` ('cpu' or 'wasm') the tfjs backend through @piflow/backend-node (wasm files located, its matMul
 * fix installed); fails with the backend's reason and install hint.
 */
export async function useTfjsBackend(name: string): Promise<void> {
  await resolveBackend({ prefer: name, fallback: false });
}

/**
 * The `serve-teacher` command: `serve-teacher --teacher <spec> --host 127.0.0.1 --port <n>`. The
 * `piflow` CLI adds it with `program.addCommand(serveTeacherCommand())`; extra teacher kinds plug in
 * through `registry`.
 */
export function serveTeacherCommand(registry: TeacherSpecRegistry = createTeacherSpecRegistry()): Command {
  const d = defaultLimits;
  return new Command('serve-teacher')
    .description('Serve a teacher over HTTP (protocol piflow-teacher/1) for remote distillation.')
    .requiredOption(
      '--teacher <spec>',
      `teacher to serve, <kind>:<argument> (kinds: ${registry.kinds().join(', ')})`,
    )
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', integer('--port', 0, 65535), 8400)
    .addOption(
      new Option('--token <token>', 'require Authorization: Bearer <token>').env('PIFLOW_TEACHER_TOKEN'),
    )
    .option(
      '--name <text>',
      "the teacher description GET /v1/metadata shows (default: the teacher's own, or the spec when that names a path)",
    )
    .option(
      '--classes <[name=]n>',
      'class count of an input of class indices (int32, one per sample; default name: labels): other values get 400; repeatable',
      classCount,
    )
    .option('--max-body-bytes <n>', 'largest request body', integer('--max-body-bytes', 64), d.maxBodyBytes)
    .option(
      '--max-buffered-bytes <n>',
      `bytes of request bodies held at once across uploads, then 503 (default ${defaultBufferedBodies} × --max-body-bytes)`,
      integer('--max-buffered-bytes', 64),
    )
    .option(
      '--max-batch-size <n>',
      'largest batch per request',
      integer('--max-batch-size', 1),
      d.maxBatchSize,
    )
    .option(
      '--max-queue <n>',
      'requests that may wait before the server answers 503',
      integer('--max-queue', 0),
      d.maxQueue,
    )
    .option(
      '--concurrency <n>',
      'velocity computations at the same time',
      integer('--concurrency', 1),
      d.concurrency,
    )
    .option(
      '--headers-timeout-ms <ms>',
      `time to receive a request's headers (also how long a new connection may stay silent), then 408`,
      integer('--headers-timeout-ms', 1),
      d.headersTimeoutMs,
    )
    .option(
      '--body-timeout-ms <ms>',
      `longest pause while a body arrives, then 408`,
      integer('--body-timeout-ms', 1),
      d.bodyTimeoutMs,
    )
    .option(
      '--request-timeout-ms <ms>',
      `time to receive a whole request, then 408`,
      integer('--request-timeout-ms', 1),
      d.requestTimeoutMs,
    )
    .option(
      '--keep-alive-timeout-ms <ms>',
      `how long an idle keep-alive connection stays open (keep it above a load balancer's idle timeout, often 60 s)`,
      integer('--keep-alive-timeout-ms', 1),
      d.keepAliveTimeoutMs,
    )
    .option(
      '--shutdown-timeout-ms <ms>',
      `after SIGTERM/SIGINT, how long requests in flight get before their connections are closed`,
      integer('--shutdown-timeout-ms', 0),
      d.shutdownTimeoutMs,
    )
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['wasm', 'cpu']).default('wasm'))
    .option('--log', 'log every request (JSON lines)', false)
    .action(async (options) => {
      await useTfjsBackend(options.backend);
      const teacher = await registry.load(options.teacher);
      // A description that names a path (e.g. a model folder) is shown as the spec the user gave instead.
      const own = teacher.metadata.description;
      const description =
        options.name ??
        (own !== undefined && redactPaths(own) !== own ? redactPaths(options.teacher) : undefined);
      const server = createTeacherServer({
        teacher,
        host: options.host,
        port: options.port,
        token: options.token,
        description,
        conditions: options.classes,
        maxBodyBytes: options.maxBodyBytes,
        maxBufferedBytes: options.maxBufferedBytes,
        maxBatchSize: options.maxBatchSize,
        maxQueue: options.maxQueue,
        concurrency: options.concurrency,
        headersTimeoutMs: options.headersTimeoutMs,
        bodyTimeoutMs: options.bodyTimeoutMs,
        requestTimeoutMs: options.requestTimeoutMs,
        keepAliveTimeoutMs: options.keepAliveTimeoutMs,
        shutdownTimeoutMs: options.shutdownTimeoutMs,
        logger: options.log,
      });
      const url = await server.listen();
      let closing = false;
      const shutdown = async (signal: string) => {
        if (closing) return;
        closing = true;
        console.log(
          `piflow teacher server: ${signal}, finishing requests in flight (closing connections after ${seconds(options.shutdownTimeoutMs)})`,
        );
        try {
          await server.close();
          teacher.dispose?.();
        } catch (error) {
          console.error(`piflow teacher server: ${error instanceof Error ? error.message : String(error)}`);
        }
        console.log('piflow teacher server: stopped');
        process.exit(0);
      };
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
      process.on('SIGINT', () => void shutdown('SIGINT'));
      console.log(`piflow teacher server listening on ${url} (${description ?? own ?? options.teacher})`);
    });
}
