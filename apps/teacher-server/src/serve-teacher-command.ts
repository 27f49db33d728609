import { resolveBackend } from '@piflow/backend-node';
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import { createTeacherServer } from './server';
import { createTeacherSpecRegistry, type TeacherSpecRegistry } from './teacher-specs';

function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new CommanderArgumentError(
        `${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}.`,
      );
    }
    return n;
  };
}

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
    .option('--max-body-bytes <n>', 'largest request body', integer('--max-body-bytes', 64), 64 * 1024 * 1024)
    .option('--max-batch-size <n>', 'largest batch per request', integer('--max-batch-size', 1), 256)
    .option(
      '--max-queue <n>',
      'requests that may wait before the server answers 503',
      integer('--max-queue', 0),
      64,
    )
    .option('--concurrency <n>', 'velocity computations at the same time', integer('--concurrency', 1), 1)
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['wasm', 'cpu']).default('wasm'))
    .option('--log', 'log every request (JSON lines)', false)
    .action(async (options) => {
      await useTfjsBackend(options.backend);
      const teacher = await registry.load(options.teacher);
      const server = createTeacherServer({
        teacher,
        host: options.host,
        port: options.port,
        token: options.token,
        maxBodyBytes: options.maxBodyBytes,
        maxBatchSize: options.maxBatchSize,
        maxQueue: options.maxQueue,
        concurrency: options.concurrency,
        logger: options.log,
      });
      const url = await server.listen();
      let closing = false;
      const shutdown = async (signal: string) => {
        if (closing) return;
        closing = true;
        console.log(`piflow teacher server: ${signal}, finishing requests in flight`);
        await server.close();
        teacher.dispose?.();
        console.log('piflow teacher server: stopped');
        process.exit(0);
      };
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
      process.on('SIGINT', () => void shutdown('SIGINT'));
      console.log(
        `piflow teacher server listening on ${url} (${teacher.metadata.description ?? options.teacher})`,
      );
    });
}
