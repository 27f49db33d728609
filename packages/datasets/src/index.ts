export {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DEBIAN_DIRECTORY,
  type FashionMnistOptions,
  loadFashionMnist,
  readIdx,
} from './fashion-mnist';
export { type ImageClassDataset, type ImageSplit, imageClassDataset } from './image-classes';
export { imageDatasetNames, loadImageDataset } from './image-datasets';
export { loadMnist, type Mnist, type MnistOptions, type MnistSplit } from './mnist';
export {
  checkerboard,
  type Dataset2D,
  type GaussianMixtureOptions,
  randomGaussianMixture,
  rings,
} from './synthetic';
