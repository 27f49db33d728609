export {
  classifyDigits,
  classifyDigitsAsync,
  createDigitClassifier,
  type DigitClassifier,
  type DigitClassifierConfig,
  digitAccuracy,
  digitAccuracyAsync,
  digitFeatures,
  digitFeaturesAsync,
  type LabelledImages,
} from './digit-classifier';
export {
  type DigitClassifierManifest,
  deserializeDigitClassifier,
  serializeDigitClassifier,
} from './digit-classifier-io';
export { type DigitMetrics, digitMetrics, digitMetricsAsync } from './digit-metrics';
export {
  classifierScore,
  type KernelInceptionDistance,
  kernelInceptionDistance,
  type PrecisionRecall,
  precisionRecall,
} from './feature-metrics';
export { featureStatistics, frechetDistance, symmetricEigen } from './frechet-distance';
export {
  type GMMeasures,
  gaussianMixtureMeasures,
  gaussianMixtureModeShift,
  type ModeShift,
} from './gm-measures';
export {
  diversity,
  energyDistance,
  mmdRBF,
  type Samples,
  slicedWasserstein,
  teacherAlignment,
} from './sample-metrics';
export {
  digitClassifierOptimizer,
  type TrainDigitClassifierOptions,
  trainDigitClassifier,
} from './train-digit-classifier';
