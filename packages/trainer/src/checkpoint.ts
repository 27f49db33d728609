import { type EMAState, isAtomicWriteTemp, PiflowError, writeFileAtomic } from '@piflow/core';

/** Everything a training run (π-ID, teacher, classifier) needs to continue exactly where it stopped. */
export interface TrainingCheckpoint {
  /** Optimiser steps completed. */
  step: number;
  /** Iterations run, skipped non-finite ones included (default: `step`). */
  iteration?: number;
  /** The trainer's RNG state (xoshiro128** words). */
  randomState: readonly [number, number, number, number];
  /** Student variables, in `student.variables` order. */
  variables: Float32Array[];
  /** The EMA's exact state (shadows in variable order, update count, remaining share), if the run keeps one. */
  ema?: EMAState;
  /** AdamW moments and step count. */
  optimizer: { step: number; m: Float32Array[]; v: Float32Array[] };
  /** Shapes of the variables (checked on load). */
  shapes: number[][];
  /** Further named lists of float32 arrays (e.g. another optimizer's slots), checksummed with the rest. */
  extra?: Record<string, Float32Array[]>;
  /** Free-form run description (options, family, versions). */
  metadata?: Record<string, unknown>;
}

/** Thrown for a checkpoint that is not one, is truncated, or fails its checksum. */
export class CheckpointError extends PiflowError {
  override name = 'CheckpointError';
}

const MAGIC = 'PIFLOWCK';
const VERSION = 1;

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Binary layout: "PIFLOWCK" | u32 version | u32 header length | header JSON | pad to 4 | float32 payload.
 * The header records the payload's length and CRC-32, so truncation and corruption are detected.
 */
export function encodeCheckpoint(checkpoint: TrainingCheckpoint): Uint8Array {
  const groups: Record<string, Float32Array[]> = {
    variables: checkpoint.variables,
    ema: checkpoint.ema?.shadows ?? [],
    m: checkpoint.optimizer.m,
    v: checkpoint.optimizer.v,
  };
  for (const [name, arrays] of Object.entries(checkpoint.extra ?? {})) {
    if (name in groups) throw new CheckpointError(`checkpoint.extra may not be named "${name}".`);
    groups[name] = arrays;
  }
  const lengths: Record<string, number[]> = {};
  let total = 0;
  for (const [name, arrays] of Object.entries(groups)) {
    lengths[name] = arrays.map((a) => a.length);
    total += arrays.reduce((s, a) => s + a.length, 0);
  }
  const payload = new Float32Array(total);
  let offset = 0;
  for (const arrays of Object.values(groups)) {
    for (const a of arrays) {
      payload.set(a, offset);
      offset += a.length;
    }
  }
  const payloadBytes = new Uint8Array(payload.buffer);
  const header = new TextEncoder().encode(
    JSON.stringify({
      step: checkpoint.step,
      iteration: checkpoint.iteration ?? checkpoint.step,
      randomState: checkpoint.randomState,
      optimizerStep: checkpoint.optimizer.step,
      ...(checkpoint.ema
        ? { emaUpdates: checkpoint.ema.updates, emaRemaining: checkpoint.ema.remaining }
        : {}),
      shapes: checkpoint.shapes,
      lengths,
      payloadBytes: payloadBytes.length,
      crc32: crc32(payloadBytes),
      metadata: checkpoint.metadata ?? {},
    }),
  );
  const headerStart = 16;
  const payloadStart = Math.ceil((headerStart + header.length) / 4) * 4;
  const out = new Uint8Array(payloadStart + payloadBytes.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, header.length, true);
  out.set(header, headerStart);
  out.set(payloadBytes, payloadStart);
  return out;
}

export function decodeCheckpoint(bytes: Uint8Array, source = 'checkpoint'): TrainingCheckpoint {
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new CheckpointError(`${source} is not a piflow checkpoint (bad magic bytes).`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== VERSION)
    throw new CheckpointError(`${source} has format version ${version}; this trainer reads ${VERSION}.`);
  const headerLength = view.getUint32(12, true);
  if (16 + headerLength > bytes.length) throw new CheckpointError(`${source} is truncated (header cut off).`);
  let header: {
    step: number;
    iteration?: number;
    randomState: [number, number, number, number];
    optimizerStep: number;
    emaUpdates?: number;
    emaRemaining?: number;
    shapes: number[][];
    lengths: Record<string, number[]>;
    payloadBytes: number;
    crc32: number;
    metadata: Record<string, unknown>;
  };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerLength)));
  } catch {
    throw new CheckpointError(`${source} has a corrupted header.`);
  }
  const payloadStart = Math.ceil((16 + headerLength) / 4) * 4;
  const payloadBytes = bytes.subarray(payloadStart);
  if (payloadBytes.length !== header.payloadBytes) {
    throw new CheckpointError(
      `${source} is truncated: ${payloadBytes.length} of ${header.payloadBytes} payload bytes present.`,
    );
  }
  if (crc32(payloadBytes) !== header.crc32)
    throw new CheckpointError(`${source} is corrupted (checksum mismatch).`);
  const payload = new Float32Array(payloadBytes.slice().buffer);
  let offset = 0;
  const take = (lengths: number[]) =>
    lengths.map((n) => {
      const a = payload.slice(offset, offset + n);
      offset += n;
      return a;
    });
  const variables = take(header.lengths.variables!);
  const ema = take(header.lengths.ema!);
  const m = take(header.lengths.m!);
  const v = take(header.lengths.v!);
  for (const [group, arrays] of [
    ['weights', variables],
    ['EMA weights', ema],
  ] as const) {
    if (arrays.some((a) => a.some((x) => !Number.isFinite(x)))) {
      throw new CheckpointError(`${source} holds non-finite ${group} (NaN or ±Infinity).`);
    }
  }
  const extraNames = Object.keys(header.lengths).filter((k) => !['variables', 'ema', 'm', 'v'].includes(k));
  const extra = Object.fromEntries(extraNames.map((name) => [name, take(header.lengths[name]!)]));
  return {
    ...(extraNames.length ? { extra } : {}),
    step: header.step,
    iteration: header.iteration ?? header.step,
    randomState: header.randomState,
    variables,
    ...(ema.length
      ? { ema: { shadows: ema, updates: header.emaUpdates ?? 0, remaining: header.emaRemaining ?? 0 } }
      : {}),
    optimizer: { step: header.optimizerStep, m, v },
    shapes: header.shapes,
    metadata: header.metadata,
  };
}

const NAME = /^ckpt-(\d+)\.piflow$/;

export function checkpointFileName(step: number): string {
  return `ckpt-${String(step).padStart(8, '0')}.piflow`;
}

/**
 * Writes a checkpoint atomically (`writeFileAtomic`: temp file, fsync, rename, folder fsync), keeps the newest
 * `keep`, and removes temp files of writes cut short by a kill (one writer per run folder: the run lock).
 */
export async function writeCheckpointFile(
  dir: string,
  checkpoint: TrainingCheckpoint,
  keep = 3,
): Promise<string> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  await fs.mkdir(dir, { recursive: true });
  const target = await writeFileAtomic(
    path.join(dir, checkpointFileName(checkpoint.step)),
    encodeCheckpoint(checkpoint),
  );
  const all = await listCheckpoints(dir);
  for (const old of all.slice(keep)) await fs.rm(old.path, { force: true });
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith('ckpt-') && isAtomicWriteTemp(name)) {
      await fs.rm(path.join(dir, name), { force: true });
    }
  }
  return target;
}

/** Checkpoint files in `dir`, newest first. */
export async function listCheckpoints(dir: string): Promise<{ step: number; path: string }[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ match: NAME.exec(name), name }))
    .filter((e) => e.match)
    .map((e) => ({ step: Number(e.match![1]), path: path.join(dir, e.name) }))
    .sort((a, b) => b.step - a.step);
}

export async function readCheckpointFile(file: string): Promise<TrainingCheckpoint> {
  const fs = await import('node:fs/promises');
  return decodeCheckpoint(new Uint8Array(await fs.readFile(file)), file);
}

/**
 * The newest checkpoint in `dir` that reads back intact; a corrupted or truncated newer one is reported
 * through `onRejected` and skipped. Returns undefined when the folder has none.
 */
export async function readLatestCheckpoint(
  dir: string,
  onRejected?: (file: string, error: CheckpointError) => void,
): Promise<{ checkpoint: TrainingCheckpoint; path: string } | undefined> {
  for (const entry of await listCheckpoints(dir)) {
    try {
      return { checkpoint: await readCheckpointFile(entry.path), path: entry.path };
    } catch (error) {
      if (!(error instanceof CheckpointError)) throw error;
      onRejected?.(entry.path, error);
    }
  }
  return undefined;
}
