export {
  classifyDigits,
  classifyDigitsAsync,
  createDigitClassifier,
  type DigitClassifier,
  type DigitClassifierConfig,
  type DigitClassifierManifest,
  type DigitMetrics,
  deserializeDigitClassifier,
  digitAccuracy,
  digitAccuracyAsync,
  digitFeatures,
  digitFeaturesAsync,
  digitMetrics,
  digitMetricsAsync,
  type LabelledImages,
  serializeDigitClassifier,
  type TrainDigitClassifierOptions,
  trainDigitClassifier,
} from './digit-classifier';
export {
  classifierScore,
  type KernelInceptionDistance,
  kernelInceptionDistance,
  type PrecisionRecall,
  precisionRecall,
} from './feature-metrics';
export { featureStatistics, frechetDistance, symmetricEigen } from './frechet-distance';
export { type GMMeasures, gaussianMixtureMeasures } from './gm-measures';
export {
  diversity,
  energyDistance,
  mmdRBF,
  type Samples,
  slicedWasserstein,
  teacherAlignment,
} from './sample-metrics';
