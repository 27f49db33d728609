import path from 'node:path';
import { Random } from '@piflow/core';
import { type ExponentialMovingAverage, getWeights, setWeights } from '@piflow/models';
import { readLatestCheckpoint, type TrainingCheckpoint, writeCheckpointFile } from '@piflow/trainer';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Checkpoints of `piflow train-teacher` and `train-classifier` (tfjs Adam runs), in the trainer's checkpoint format (`<out>/checkpoints/ckpt-<step>
 * .piflow`: written to a temp file, fsynced and renamed; a CRC-32 over the payload; non-finite weights
 * rejected): the raw weights, the EMA's exact state (shadows, initial values, their share and update count),
 * the Adam slots and the random generator after a step. Resume takes the newest intact one.
 */
/** Which command wrote a checkpoint: another command's checkpoint is not resumed. */
export type TrainingKind = 'teacher' | 'classifier';

interface TrainingCheckpointMetadata {
  kind: TrainingKind;
  adam: { name: string; shape: number[] }[];
  ema?: { remaining: number; updates: number };
}

export async function saveTrainingCheckpoint(
  kind: TrainingKind,
  out: string,
  state: {
    step: number;
    random: Random;
    variables: readonly tf.Variable[];
    ema?: ExponentialMovingAverage;
    optimizer: tf.Optimizer;
  },
  keep = 2,
): Promise<string> {
  const adam = await state.optimizer.getWeights();
  const adamValues = await Promise.all(
    adam.map(async ({ tensor }) => Float32Array.from(await tensor.data())),
  );
  const ema = state.ema ? await state.ema.getState() : undefined;
  const metadata: TrainingCheckpointMetadata = {
    kind,
    adam: adam.map(({ name, tensor }) => ({ name, shape: [...tensor.shape] })),
    ...(ema ? { ema: { remaining: ema.remaining, updates: ema.updates } } : {}),
  };
  const checkpoint: TrainingCheckpoint = {
    step: state.step,
    randomState: state.random.state(),
    variables: getWeights(state.variables),
    ema: ema?.shadows ?? [],
    optimizer: { step: 0, m: [], v: [] },
    shapes: state.variables.map((v) => [...v.shape]),
    extra: { adam: adamValues, ...(ema?.initial ? { emaInitial: ema.initial } : {}) },
    metadata: metadata as unknown as Record<string, unknown>,
  };
  return writeCheckpointFile(path.join(out, 'checkpoints'), checkpoint, keep);
}

/**
 * Restores the newest intact checkpoint into the given variables, EMA and optimizer (a corrupted or truncated
 * newer one is reported through `onWarning` and skipped); undefined when there is none.
 */
export async function loadTrainingCheckpoint(
  kind: TrainingKind,
  out: string,
  state: { variables: readonly tf.Variable[]; ema?: ExponentialMovingAverage; optimizer: tf.Optimizer },
  onWarning: (message: string) => void = () => {},
): Promise<{ step: number; random: Random } | undefined> {
  const found = await readLatestCheckpoint(path.join(out, 'checkpoints'), (file, error) =>
    onWarning(`skipping checkpoint ${file}: ${error.message}`),
  );
  if (!found) return undefined;
  const { checkpoint } = found;
  const metadata = checkpoint.metadata as unknown as TrainingCheckpointMetadata;
  if (metadata?.kind !== kind || !checkpoint.extra?.adam) {
    throw new Error(`${found.path} is not a train-${kind} checkpoint.`);
  }
  const shapes = state.variables.map((v) => v.shape.join('×')).join(', ');
  if (checkpoint.shapes.map((s) => s.join('×')).join(', ') !== shapes) {
    throw new Error(
      `${found.path} holds weights of shapes [${checkpoint.shapes.map((s) => s.join('×')).join(', ')}]; this model's are [${shapes}].`,
    );
  }
  setWeights(state.variables, checkpoint.variables);
  if (state.ema && metadata.ema) {
    state.ema.setState({
      shadows: checkpoint.ema,
      ...(checkpoint.extra.emaInitial ? { initial: checkpoint.extra.emaInitial } : {}),
      remaining: metadata.ema.remaining,
      updates: metadata.ema.updates,
    });
  }
  const optimizer = metadata.adam.map((entry, i) => ({
    name: entry.name,
    tensor: tf.tensor(checkpoint.extra!.adam![i]!, entry.shape, 'float32'),
  }));
  await state.optimizer.setWeights(optimizer);
  tf.dispose(optimizer.map((o) => o.tensor));
  return { step: checkpoint.step, random: Random.fromState(checkpoint.randomState) };
}
