import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame, tensorContentType, type WireTensor } from '@piflow/teachers';

export const appRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const mixture = {
  means: [
    [-1, 0.5, 0.25],
    [1.5, -0.5, 1],
    [0, 2, -1],
  ],
  std: 0.3,
  weights: [0.2, 0.5, 0.3],
};

/** Writes the analytic-GM spec file and returns its path. */
export async function writeMixture(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'piflow-teacher-server-'));
  const file = path.join(dir, 'mixture.json');
  await writeFile(file, JSON.stringify(mixture));
  return file;
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  output: () => string;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `piflow-teacher-server` (the app's start command, or another `script` relative to the app) as a real
 * process on loopback.
 */
export async function startServer(
  args: string[],
  env: Record<string, string> = {},
  script = 'src/cli.ts',
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--conditions=@piflow/source', '--import', 'tsx', script, ...args], {
    cwd: appRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 90 s:\n${output}`)), 90_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A free loopback port (bound once, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The frame of a valid velocity request. */
export function velocityFrame(
  x: Float32Array,
  shape: number[],
  sigma: number[],
  extra: WireTensor[] = [],
): Uint8Array {
  return encodeFrame([
    { name: 'x', dtype: 'float32', shape, data: x },
    { name: 'sigma', dtype: 'float32', shape: [sigma.length], data: Float32Array.from(sigma) },
    ...extra,
  ]);
}

export async function post(url: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/v1/velocity`, {
    method: 'POST',
    headers: { 'content-type': tensorContentType, ...headers },
    body: body as BodyInit,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return {
    status: response.status,
    headers: response.headers,
    bytes,
    text: () => new TextDecoder().decode(bytes),
  };
}

export interface RawConnection {
  socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** The status code of the first answer, if one came. */
  status(): number | undefined;
  /** The JSON body of the first answer, if one came. */
  json(): { error?: { code?: string; message?: string; field?: string } } | undefined;
  /** Resolves when the server closes the connection, to ms since `opened`. */
  closed: Promise<number>;
  opened: number;
}

/** A raw TCP connection to the server on loopback (to hold it idle, stall an upload, …); `send` once connected. */
export async function rawConnection(port: number, send = ''): Promise<RawConnection> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  socket.on('error', () => {}); // a reset counts as closed
  const opened = performance.now();
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => resolve(performance.now() - opened)),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (send) socket.write(send);
  return {
    socket,
    opened,
    closed,
    received: () => text,
    status: () => {
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      return match ? Number(match[1]) : undefined;
    },
    json: () => {
      const start = text.indexOf('\r\n\r\n');
      if (start < 0) return undefined;
      try {
        return JSON.parse(text.slice(start + 4));
      } catch {
        return undefined;
      }
    },
  };
}

/** The request line and headers of a velocity upload (`length` undefined: chunked). */
export function uploadHead(length: number | undefined): string {
  return (
    `POST /v1/velocity HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${tensorContentType}\r\n` +
    (length === undefined ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`) +
    '\r\n'
  );
}

/** Waits until `condition()` holds, polling every 20 ms, for at most `timeoutMs`; returns whether it held. */
export async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/**
 * Path of nginx, or undefined when it is not installed (the suite that needs it is then skipped). The test
 * suites install nothing; with PIFLOW_TEST_INSTALL_NGINX=1 Debian's package is installed when missing.
 */
export function findNginx(): string | undefined {
  const find = () => {
    for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx']) {
      try {
        execFileSync(candidate, ['-v'], { stdio: 'ignore' });
        return candidate;
      } catch {
        // not here
      }
    }
    return undefined;
  };
  const found = find();
  if (found || process.env.PIFLOW_TEST_INSTALL_NGINX !== '1') return found;
  execFileSync(
    'sh',
    ['-c', 'apt-get install -y -qq nginx || (apt-get update -qq && apt-get install -y -qq nginx)'],
    {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 300_000,
    },
  );
  return find();
}
