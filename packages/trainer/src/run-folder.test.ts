import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireRunFolder, RunFolderError } from './run-folder';

const runFiles = ['model', 'checkpoints', 'distill-log.jsonl'];

async function folderWithRun(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'piflow-run-'));
  await mkdir(path.join(dir, 'model'));
  await writeFile(path.join(dir, 'model', 'model.json'), '{"first":true}');
  await writeFile(path.join(dir, 'distill-log.jsonl'), '{"step":1}\n');
  await writeFile(path.join(dir, 'notes.txt'), 'mine');
  return dir;
}

describe('acquireRunFolder', () => {
  it('refuses a folder holding a run without resume or overwrite, changing nothing', async () => {
    const dir = await folderWithRun();
    const before = (await readdir(dir)).sort();
    const error = await acquireRunFolder(dir, { runFiles }).catch((e) => e);
    expect(error).toBeInstanceOf(RunFolderError);
    expect(error.message).toMatch(/already holds a run \(distill-log.jsonl, model\).*--resume.*--overwrite/);
    expect((await readdir(dir)).sort()).toEqual(before);
    expect(await readFile(path.join(dir, 'model', 'model.json'), 'utf8')).toBe('{"first":true}');
  });

  it('resume keeps the files; overwrite removes exactly the run files', async () => {
    const dir = await folderWithRun();
    const resumed = await acquireRunFolder(dir, { runFiles, resume: true });
    expect(resumed.hadRun).toBe(true);
    expect(existsSync(path.join(dir, 'model', 'model.json'))).toBe(true);
    await resumed.release();
    const fresh = await acquireRunFolder(dir, { runFiles, overwrite: true });
    expect((await readdir(dir)).filter((n) => !n.startsWith('.')).sort()).toEqual(['notes.txt']);
    await fresh.release();
    await expect(acquireRunFolder(dir, { runFiles, resume: true, overwrite: true })).rejects.toThrow(
      /exclude each other/,
    );
  });

  it('a second run on a locked folder is told which process holds it; a dead holder’s lock is taken over', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'piflow-run-'));
    const first = await acquireRunFolder(dir, { runFiles });
    const lock = JSON.parse(await readFile(path.join(dir, '.piflow-run.lock'), 'utf8'));
    expect(lock.pid).toBe(process.pid);
    await expect(acquireRunFolder(dir, { runFiles, resume: true })).rejects.toThrow(
      new RegExp(`in use by another run \\(pid ${process.pid}`),
    );
    await first.release();
    expect(existsSync(path.join(dir, '.piflow-run.lock'))).toBe(false);
    // a lock left by a process that has exited (as after SIGKILL)
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    await writeFile(
      path.join(dir, '.piflow-run.lock'),
      JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), started: 'then' }),
    );
    const second = await acquireRunFolder(dir, { runFiles, resume: true });
    await second.release();
  });
});
