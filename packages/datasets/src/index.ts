export { loadMnist, type Mnist, type MnistOptions, type MnistSplit } from './mnist';
export {
  checkerboard,
  type Dataset2D,
  type GaussianMixtureOptions,
  randomGaussianMixture,
  rings,
} from './synthetic';
