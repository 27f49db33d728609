import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { workspaceRoot } from './workspace';

/** One fenced TypeScript block of a Markdown file. */
export interface Snippet {
  /** The Markdown file, relative to the workspace root (e.g. 'packages/core/README.md'). */
  file: string;
  /** 1-based line of the snippet's first code line in that file. */
  line: number;
  code: string;
  /** `file:line`, a name for reports. */
  location: string;
  /** A file-system-safe name, unique in the workspace (e.g. 'packages-core-README-10'). */
  slug: string;
  /**
   * 'vitest' for a test file (it imports `vitest` or a `/testing` entry such as `@piflow/core/testing`): it runs
   * under vitest; 'module' for everything else: it runs as a plain ES module.
   */
  kind: 'module' | 'vitest';
  /** The file name the snippet is written to: `index.ts`, or `index.test.ts` for a test file. */
  fileName: string;
}

const TEST_IMPORT = /\bfrom\s+['"](?:vitest|[^'"]+\/testing(?:\/[^'"]*)?)['"]/;

/**
 * The documentation whose TypeScript snippets are executed: the root README, every package's, app's and
 * example's README, and docs/*.md.
 */
export function documentationFiles(): string[] {
  const files = ['README.md'];
  for (const folder of ['packages', 'apps', 'examples']) {
    const root = path.join(workspaceRoot, folder);
    if (!existsSync(root)) continue;
    for (const entry of readdirSync(root, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (entry.isDirectory() && existsSync(path.join(root, entry.name, 'README.md'))) {
        files.push(`${folder}/${entry.name}/README.md`);
      }
    }
  }
  const docs = path.join(workspaceRoot, 'docs');
  if (existsSync(docs)) {
    for (const name of readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .sort())
      files.push(`docs/${name}`);
  }
  return files;
}

const OPENING = /^(\s*)(`{3,}|~{3,})\s*(ts|typescript|mts|tsx)\b.*$/;

/** The ```ts (or ```typescript) blocks of one Markdown file; other languages (sh, json, python) are skipped. */
export function extractSnippets(
  file: string,
  text = readFileSync(path.join(workspaceRoot, file), 'utf8'),
): Snippet[] {
  const lines = text.split('\n');
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const opening = OPENING.exec(lines[i]!);
    if (!opening) {
      // Skip other fenced blocks whole, so a ```ts inside them is not taken for a snippet.
      const other = /^\s*(`{3,}|~{3,})/.exec(lines[i]!);
      if (other) {
        const fence = other[1]!;
        i++;
        while (i < lines.length && !lines[i]!.trim().startsWith(fence)) i++;
      }
      continue;
    }
    const fence = opening[2]!;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end]!.trim().startsWith(fence)) end++;
    const line = start + 1;
    const slug = `${file.replace(/\.md$/, '').replace(/[^A-Za-z0-9]+/g, '-')}-${line}`;
    const code = lines.slice(start, end).join('\n');
    const kind = TEST_IMPORT.test(code) ? 'vitest' : 'module';
    const fileName = kind === 'vitest' ? 'index.test.ts' : 'index.ts';
    snippets.push({ file, line, code, location: `${file}:${line}`, slug, kind, fileName });
    i = end;
  }
  return snippets;
}

/** Every TypeScript snippet of `documentationFiles()`. */
export function documentationSnippets(): Snippet[] {
  return documentationFiles().flatMap((file) => extractSnippets(file));
}
