import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Random, type RandomState } from '@piflow/core';
import { type ExponentialMovingAverage, getWeights, setWeights } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Checkpoints of `piflow train-teacher`: the raw weights, the EMA, the Adam state and the random generator
 * after a step, in `<out>/checkpoints/ckpt-<step>/`; `<out>/checkpoints/latest.json` (written by temp file and
 * rename, last) names the newest complete one, so a run killed mid-write resumes from the previous one.
 */
export interface TeacherTrainingState {
  step: number;
  random: RandomState;
}

interface Stored {
  version: 1;
  step: number;
  random: RandomState;
  tensors: { name: string; shape: number[]; offset: number }[];
}

async function atomicWrite(file: string, data: string | Uint8Array): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  await writeFile(temp, data);
  await rename(temp, file);
}

export async function saveTeacherCheckpoint(
  out: string,
  state: {
    step: number;
    random: Random;
    variables: readonly tf.Variable[];
    ema?: ExponentialMovingAverage;
    optimizer: tf.Optimizer;
  },
  keep = 2,
): Promise<void> {
  const root = path.join(out, 'checkpoints');
  const name = `ckpt-${String(state.step).padStart(8, '0')}`;
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  const arrays: { name: string; values: Float32Array; shape: number[] }[] = [];
  getWeights(state.variables).forEach((values, i) =>
    arrays.push({ name: `model/${i}`, values, shape: [...state.variables[i]!.shape] }),
  );
  state.ema
    ?.getWeights()
    .forEach((values, i) => arrays.push({ name: `ema/${i}`, values, shape: [...state.variables[i]!.shape] }));
  for (const { name: n, tensor } of await state.optimizer.getWeights()) {
    arrays.push({
      name: `optimizer/${n}`,
      values: Float32Array.from(await tensor.data()),
      shape: [...tensor.shape],
    });
  }
  let offset = 0;
  const tensors = arrays.map((a) => {
    const entry = { name: a.name, shape: a.shape, offset };
    offset += a.values.length;
    return entry;
  });
  const flat = new Float32Array(offset);
  arrays.forEach((a, i) => flat.set(a.values, tensors[i]!.offset));
  const stored: Stored = { version: 1, step: state.step, random: state.random.state(), tensors };
  await atomicWrite(path.join(dir, 'tensors.bin'), new Uint8Array(flat.buffer));
  await atomicWrite(path.join(dir, 'state.json'), `${JSON.stringify(stored)}\n`);
  await atomicWrite(
    path.join(root, 'latest.json'),
    `${JSON.stringify({ checkpoint: name, step: state.step })}\n`,
  );
  const old = (await readdir(root)).filter((f) => /^ckpt-\d+$/.test(f)).sort();
  for (const f of old.slice(0, Math.max(0, old.length - keep)))
    await rm(path.join(root, f), { recursive: true, force: true });
}

/** Restores the newest checkpoint into the given variables, EMA and optimizer; undefined when there is none. */
export async function loadTeacherCheckpoint(
  out: string,
  state: { variables: readonly tf.Variable[]; ema?: ExponentialMovingAverage; optimizer: tf.Optimizer },
): Promise<{ step: number; random: Random } | undefined> {
  const latest = path.join(out, 'checkpoints', 'latest.json');
  if (!existsSync(latest)) return undefined;
  const { checkpoint } = JSON.parse(await readFile(latest, 'utf8')) as { checkpoint: string };
  const dir = path.join(out, 'checkpoints', checkpoint);
  const stored = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8')) as Stored;
  const bytes = await readFile(path.join(dir, 'tensors.bin'));
  const flat = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const take = (prefix: string) =>
    stored.tensors
      .filter((t) => t.name.startsWith(prefix))
      .map((t) => ({ ...t, values: flat.subarray(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)) }));
  const model = take('model/');
  if (model.length !== state.variables.length) {
    throw new Error(`${dir} holds ${model.length} model tensors, this model has ${state.variables.length}.`);
  }
  setWeights(
    state.variables,
    model.map((t) => t.values),
  );
  const ema = take('ema/');
  if (state.ema && ema.length) state.ema.setWeights(ema.map((t) => t.values));
  const optimizer = take('optimizer/').map((t) => ({
    name: t.name.slice('optimizer/'.length),
    tensor: tf.tensor(t.values, t.shape, 'float32'),
  }));
  await state.optimizer.setWeights(optimizer);
  tf.dispose(optimizer.map((o) => o.tensor));
  return { step: stored.step, random: Random.fromState(stored.random) };
}
