export {
  checkerboard,
  type Dataset2D,
  type GaussianMixtureOptions,
  randomGaussianMixture,
  rings,
} from './synthetic';
