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
  NonFiniteLossError,
  PiIDTrainer,
  type PiIDTrainerOptions,
  type StepMetrics,
  type TrainOptions,
} from './pi-id-trainer';
export { intermediateOffsets, type Segments, sampleSegments, teacherRatioAt } from './segments';
