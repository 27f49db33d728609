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
