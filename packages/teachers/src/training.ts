// Training helpers (flow matching for the FLUX-shaped transformer, the synthetic latent task). A separate
// entry because it registers tfjs' gradients (a side effect the inference entry does not need).
export {
  createSyntheticLatentTask,
  type SyntheticLatentTask,
  type SyntheticLatentTaskOptions,
  tinyFluxFixtureConfig,
} from './flux-style/synthetic-latents';
export {
  type LatentTrainingBatch,
  type TrainLatentTransformerOptions,
  trainLatentTransformer,
} from './flux-style/train-latent-transformer';
