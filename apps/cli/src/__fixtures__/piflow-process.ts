import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const main = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.ts');
const tsx = createRequire(import.meta.url).resolve('tsx');

export interface Run {
  code: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts the real `piflow` command (from source) as a child process in its own process group. */
export function startPiflow(args: string[], options: { cwd?: string; backend?: string } = {}): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', tsx, '--conditions=@piflow/source', main, '--backend', options.backend ?? 'cpu', ...args],
    {
      cwd: options.cwd,
      env: { ...process.env, CI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
}

/** Collects a started process's output until it exits. */
export function finished(child: ChildProcess): Promise<Run> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs the real `piflow` command (from source) as a child process. */
export function piflow(
  args: string[],
  options: {
    cwd?: string;
    interruptAfter?: RegExp;
    /** Sends SIGINT once this holds (polled every 100 ms): an event of the run, not a fixed delay. */
    interruptWhen?: () => boolean;
    backend?: string;
  } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', tsx, '--conditions=@piflow/source', main, '--backend', options.backend ?? 'cpu', ...args],
      {
        cwd: options.cwd,
        env: { ...process.env, CI: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (options.interruptAfter && !interrupted && options.interruptAfter.test(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    const poll =
      options.interruptWhen &&
      setInterval(() => {
        if (!interrupted && options.interruptWhen!()) {
          interrupted = true;
          child.kill('SIGINT');
        }
      }, 100);
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      resolve({ code, stdout, stderr });
    });
  });
}
