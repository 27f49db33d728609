/**
 * Flow-matching training of the FLUX-shaped transformer and the synthetic latent task.
 * @module @piflow/teachers/training
 */
// Training helpers (flow matching for the FLUX-shaped transformer, the synthetic latent task). A separate
// entry: training needs tfjs's gradient functions (`trainLatentTransformer` registers them through
// `registerGradients`, from the optional `@tensorflow/tfjs` peer), which the inference entry does not.
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
