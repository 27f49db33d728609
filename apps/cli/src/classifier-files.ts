import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@piflow/core';
import {
  type DigitClassifier,
  type DigitClassifierManifest,
  deserializeDigitClassifier,
  serializeDigitClassifier,
} from '@piflow/eval';
import { shippedModelsDir } from './context';
import { UsageError } from './errors';

/** Writes `classifier.json` and `weights.bin` into `dir`, each written atomically. */
export async function saveClassifier(
  dir: string,
  classifier: DigitClassifier,
  metadata: Record<string, unknown>,
): Promise<void> {
  const { manifest, weights } = serializeDigitClassifier(classifier, metadata);
  await mkdir(dir, { recursive: true });
  for (const [name, data] of [
    ['weights.bin', weights],
    ['classifier.json', `${JSON.stringify(manifest, null, 2)}\n`],
  ] as const) {
    await writeFileAtomic(path.join(dir, name), data);
  }
}

/** Loads a classifier folder; `mnist` (or nothing) and `fashion-mnist` name the shipped ones. */
export async function loadClassifier(spec = 'mnist'): Promise<{ classifier: DigitClassifier; dir: string }> {
  const dir =
    spec === 'mnist' || spec === 'fashion-mnist' ? path.join(shippedModelsDir(), spec, 'classifier') : spec;
  if (!existsSync(path.join(dir, 'classifier.json'))) {
    throw new UsageError(
      `No classifier.json in ${dir}.`,
      'train one with `piflow train-classifier --out <dir>` or use a shipped one (mnist, fashion-mnist).',
    );
  }
  const manifest = JSON.parse(
    await readFile(path.join(dir, 'classifier.json'), 'utf8'),
  ) as DigitClassifierManifest;
  const weights = await readFile(path.join(dir, 'weights.bin'));
  return { classifier: deserializeDigitClassifier(manifest, new Uint8Array(weights)), dir };
}
