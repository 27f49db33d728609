export { AdamW, type AdamWOptions, type AdamWState } from './adamw';
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
export { EMA, type EMAOptions } from './ema';
export {
  createPiIDTrainer,
  type DataBatch,
  type LossWeighting,
  NonFiniteLossError,
  PiIDTrainer,
  type PiIDTrainerOptions,
  type StepMetrics,
  type TrainOptions,
} from './pi-id-trainer';
export { acquireRunFolder, type RunFolder, RunFolderError, type RunFolderOptions } from './run-folder';
export {
  intermediateOffsets,
  type SegmentSampling,
  type Segments,
  sampleSegments,
  teacherRatioAt,
} from './segments';
