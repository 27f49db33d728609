import { readFile } from 'node:fs/promises';
import { checkPackage, createPackageFromTarballData } from '@arethetypeswrong/core';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

/** `publint --strict` on a packed tarball: every message (warnings count as errors), formatted. */
export async function publintTarball(tarball: string): Promise<string[]> {
  const data = await readFile(tarball);
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  const { messages, pkg } = await publint({ pack: { tarball: buffer }, strict: true, level: 'suggestion' });
  return messages.map((m) => `${m.type}: ${formatMessage(m, pkg) ?? m.code}`);
}

/**
 * `attw --profile esm-only` on a packed tarball: the packages are ESM-only, so node10 and require-from-CJS
 * resolutions are not expected to work; everything else (node16 from ESM, bundler) must.
 */
export async function attwTarball(tarball: string): Promise<string[]> {
  const data = await readFile(tarball);
  const analysis = await checkPackage(createPackageFromTarballData(new Uint8Array(data)));
  if (analysis.types === false) return ['the package ships no type declarations'];
  const ignored = ['node10', 'node16-cjs'];
  return analysis.problems
    .filter((p) => !('resolutionKind' in p) || !ignored.includes(p.resolutionKind))
    .map((p) => {
      const where = 'entrypoint' in p ? ` at "${p.entrypoint}"` : '';
      const resolution = 'resolutionKind' in p ? ` (${p.resolutionKind})` : '';
      return `${p.kind}${where}${resolution}`;
    });
}
