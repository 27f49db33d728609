import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
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

/** Starts `piflow-teacher-server` (the app's start command) as a real process on loopback. */
export async function startServer(args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    ['--conditions=@piflow/source', '--import', 'tsx', 'src/cli.ts', ...args],
    {
      cwd: appRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
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

/** Path of nginx, installing Debian's package when missing (root only). */
export function ensureNginx(): string {
  for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not here
    }
  }
  execFileSync(
    'sh',
    ['-c', 'apt-get install -y -qq nginx || (apt-get update -qq && apt-get install -y -qq nginx)'],
    {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 300_000,
    },
  );
  return '/usr/sbin/nginx';
}
