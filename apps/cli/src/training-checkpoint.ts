import path from 'node:path';
import { type AdamW, type EMA, Random } from '@piflow/core';
import { getWeights, setWeights } from '@piflow/models';
import { readLatestCheckpoint, writeCheckpointFile } from '@piflow/trainer';
import type * as tf from '@tensorflow/tfjs-core';

/**
 * Checkpoints of `piflow train-teacher` and `train-classifier`, in the trainer's checkpoint format (the one
 * `distill` writes: `<out>/checkpoints/ckpt-<step>.piflow`, written atomically with fsync, a CRC-32 over the
 * payload, non-finite weights rejected): the raw weights, the AdamW moments and step, the EMA's exact state and
 * the random generator after a step. Resume takes the newest intact one.
 */
/** Which command wrote a checkpoint: another command's checkpoint is not resumed. */
export type TrainingKind = 'teacher' | 'classifier';

interface TrainingState {
  variables: readonly tf.Variable[];
  optimizer: AdamW;
  ema?: EMA;
}

export async function saveTrainingCheckpoint(
  kind: TrainingKind,
  out: string,
  state: TrainingState & { step: number; random: Random },
  keep = 2,
): Promise<string> {
  return writeCheckpointFile(
    path.join(out, 'checkpoints'),
    {
      step: state.step,
      randomState: state.random.state(),
      variables: getWeights(state.variables),
      ...(state.ema ? { ema: await state.ema.getStateAsync() } : {}),
      optimizer: await state.optimizer.getStateAsync(),
      shapes: state.variables.map((v) => [...v.shape]),
      metadata: { kind },
    },
    keep,
  );
}

/**
 * Restores the newest intact checkpoint into the given variables, optimizer and EMA (a corrupted or truncated
 * newer one is reported through `onWarning` and skipped); undefined when there is none.
 */
export async function loadTrainingCheckpoint(
  kind: TrainingKind,
  out: string,
  state: TrainingState,
  onWarning: (message: string) => void = () => {},
): Promise<{ step: number; random: Random } | undefined> {
  const found = await readLatestCheckpoint(path.join(out, 'checkpoints'), (file, error) =>
    onWarning(`skipping checkpoint ${file}: ${error.message}`),
  );
  if (!found) return undefined;
  const { checkpoint } = found;
  if (checkpoint.metadata?.kind !== kind) {
    throw new Error(`${found.path} is not a train-${kind} checkpoint.`);
  }
  const shapes = state.variables.map((v) => v.shape.join('×')).join(', ');
  if (checkpoint.shapes.map((s) => s.join('×')).join(', ') !== shapes) {
    throw new Error(
      `${found.path} holds weights of shapes [${checkpoint.shapes.map((s) => s.join('×')).join(', ')}]; this model's are [${shapes}].`,
    );
  }
  setWeights(state.variables, checkpoint.variables);
  state.optimizer.setState(checkpoint.optimizer);
  if (state.ema && checkpoint.ema) state.ema.setState(checkpoint.ema);
  return { step: checkpoint.step, random: Random.fromState(checkpoint.randomState) };
}
