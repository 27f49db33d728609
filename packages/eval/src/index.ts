export {
  classifyDigits,
  classifyDigitsAsync,
  createDigitClassifier,
  type DigitClassifier,
  type DigitClassifierConfig,
  type DigitClassifierManifest,
  deserializeDigitClassifier,
  digitAccuracy,
  digitAccuracyAsync,
  digitFeatures,
  digitFeaturesAsync,
  type LabelledImages,
  serializeDigitClassifier,
  type TrainDigitClassifierOptions,
  trainDigitClassifier,
} from './digit-classifier';
export { type DigitMetrics, digitMetrics, digitMetricsAsync } from './digit-metrics';
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
