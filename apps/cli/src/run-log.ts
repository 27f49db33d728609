import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

/**
 * A resumed run's JSONL log: keeps the lines of steps up to `step` (the checkpoint it resumes from; the steps
 * after it run again) and drops a last line cut short by a kill, rewriting the file. Returns the kept entries.
 */
export async function truncateLog<T extends { step: number }>(file: string, step: number): Promise<T[]> {
  const kept: T[] = [];
  if (existsSync(file)) {
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      if (!line) continue;
      try {
        const entry = JSON.parse(line) as T;
        if (entry.step <= step) kept.push(entry);
      } catch {
        // a line cut short by a kill
      }
    }
  }
  await writeFile(file, kept.map((entry) => `${JSON.stringify(entry)}\n`).join(''));
  return kept;
}
