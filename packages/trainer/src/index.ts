// The one optimizer and EMA of every piflow trainer live in @piflow/core; re-exported here for π-ID users.
export {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  EMA,
  type EMAOptions,
  type EMAState,
} from '@piflow/core';
export {
  CheckpointError,
  checkpointFileName,
  decodeCheckpoint,
  encodeCheckpoint,
  listCheckpoints,
  readCheckpointFile,
  readLatestCheckpoint,
  type TrainingCheckpoint,
  writeCheckpointFile,
} from './checkpoint';
export type {
  DataBatch,
  LossWeighting,
  PiIDTrainerOptions,
  StepMetrics,
  TrainOptions,
} from './pi-id-options';
export { createPiIDTrainer, NonFiniteLossError, PiIDTrainer } from './pi-id-trainer';
export { acquireRunFolder, type RunFolder, RunFolderError, type RunFolderOptions } from './run-folder';
export {
  intermediateOffsets,
  type SegmentSampling,
  type Segments,
  sampleSegments,
  teacherRatioAt,
} from './segments';
