import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { InvalidArgumentError } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import { setupWasm } from './setup-wasm';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, '__fixtures__', 'wasm-threads-run.ts');
const tsx = createRequire(import.meta.url).resolve('tsx');

interface ThreadRun {
  setupThreads: number;
  backendThreads: number;
  poolThreads: number;
  conv: number[];
  product: number[];
  dx: number[];
  da: number[];
  db: number[];
}

/** The fixture in a fresh Node process (the thread pool is fixed when a process's wasm backend starts). */
async function runWith(threads: number): Promise<ThreadRun> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', tsx, '--conditions=@piflow/source', script, String(threads)],
    { timeout: 60_000 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ThreadRun;
}

describe('setupWasm({ threads })', () => {
  it('runs XNNPACK and piflow kernels on 2 threads in Node and computes what one thread computes', async () => {
    const [one, two] = await Promise.all([runWith(1), runWith(2)]);
    expect(one.setupThreads).toBe(1);
    expect(one.backendThreads).toBe(1);
    expect(two.setupThreads).toBe(2);
    expect(two.backendThreads).toBe(2);
    // piflow's own kernels get a pool of as many threads (none with one thread)
    expect(one.poolThreads).toBe(1);
    expect(two.poolThreads).toBe(2);
    for (const key of ['conv', 'product', 'dx', 'da', 'db'] as const) {
      for (let i = 0; i < 3; i++) {
        const tolerance = 1e-5 * Math.max(1, Math.abs(one[key][i]!));
        expect(Math.abs(two[key][i]! - one[key][i]!), `${key}[${i}]`).toBeLessThanOrEqual(
          i === 2 ? tolerance * 1e3 : tolerance,
        );
      }
    }
  }, 120_000);

  it('rejects thread counts outside 1 to 8 naming the option', async () => {
    for (const threads of [0, 9, 1.5, Number.NaN, '2' as unknown as number]) {
      await expect(setupWasm({ threads })).rejects.toThrow(InvalidArgumentError);
      await expect(setupWasm({ threads })).rejects.toThrow(/options.threads.*an integer from 1 to 8/);
    }
  });
});
