import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describeValue, InvalidArgumentError } from '@piflow/core';
import { type ImageClassDataset, type ImageSplit, imageClassDataset } from './image-classes';

/** Where Debian's `dataset-fashion-mnist` package installs the four IDX files. */
export const FASHION_MNIST_DEBIAN_DIRECTORY = '/usr/share/datasets/fashion-mnist';

/** The ten Fashion-MNIST classes, index = label. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export interface FashionMnistOptions {
  /**
   * Folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz)
   * and t10k-labels-idx1-ubyte(.gz). Default: `PIFLOW_FASHION_MNIST_DIR`, else Debian's
   * /usr/share/datasets/fashion-mnist.
   */
  directory?: string;
}

const cache = new Map<string, ImageClassDataset>();

/**
 * Fashion-MNIST (Xiao et al. 2017): 70 000 28×28 grey images of clothing in 10 classes, read from the
 * standard IDX files (gzip-compressed or not): the 60 000 training images as `train`, the 10 000 test images
 * as `heldOut`. Pixels scaled to [−1, 1], channels-last [28, 28, 1]. Node only; on Debian/Ubuntu
 * `apt-get install dataset-fashion-mnist` provides the files.
 */
export function loadFashionMnist(options: FashionMnistOptions = {}): ImageClassDataset {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'an object { directory? }', describeValue(options));
  }
  const directory =
    options.directory ?? process.env.PIFLOW_FASHION_MNIST_DIR ?? FASHION_MNIST_DEBIAN_DIRECTORY;
  const cached = cache.get(directory);
  if (cached) return cached;
  const dataset = imageClassDataset(
    { name: 'fashion-mnist', classNames: FASHION_MNIST_CLASSES, imageShape: [28, 28, 1] },
    readSplit(directory, 'train'),
    readSplit(directory, 't10k'),
  );
  cache.set(directory, dataset);
  return dataset;
}

function readSplit(directory: string, prefix: 'train' | 't10k'): ImageSplit {
  const images = readIdx(directory, `${prefix}-images-idx3-ubyte`, 3);
  const labels = readIdx(directory, `${prefix}-labels-idx1-ubyte`, 1);
  const [count, H, W] = images.dims as [number, number, number];
  if (H !== 28 || W !== 28 || labels.dims[0] !== count) {
    throw new Error(
      `Fashion-MNIST in ${directory}: ${prefix} images are [${images.dims}] with ${labels.dims[0]} labels; expected [n, 28, 28] and n labels.`,
    );
  }
  const pixels = new Float32Array(count * 784);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (images.data[i]! / 255) * 2 - 1;
  const classes = Int32Array.from(labels.data);
  if (classes.some((c) => c > 9)) {
    throw new Error(`Fashion-MNIST in ${directory}: ${prefix} labels outside 0–9.`);
  }
  return { images: pixels, labels: classes, count };
}

/** An IDX file of unsigned bytes (magic 0x0000 08 rank, big-endian dimensions), gzip-compressed or not. */
export function readIdx(directory: string, name: string, rank: number): { dims: number[]; data: Uint8Array } {
  const file = [path.join(directory, `${name}.gz`), path.join(directory, name)].find((f) => existsSync(f));
  if (!file) {
    throw new Error(
      `Fashion-MNIST not found: no ${name}(.gz) in ${directory}. On Debian/Ubuntu install it with \`apt-get install -y dataset-fashion-mnist\`, or set PIFLOW_FASHION_MNIST_DIR (or the directory option) to a folder holding the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz).`,
    );
  }
  const raw = readFileSync(file);
  const bytes = file.endsWith('.gz') ? gunzipSync(raw) : raw;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (
    bytes.length < 4 + 4 * rank ||
    view.getUint16(0) !== 0 ||
    view.getUint8(2) !== 0x08 ||
    view.getUint8(3) !== rank
  ) {
    throw new Error(`${file} is not an IDX file of unsigned bytes with ${rank} dimension(s).`);
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * rank;
  if (bytes.length !== offset + size) {
    throw new Error(`${file}: ${bytes.length - offset} data bytes where its header says ${size}.`);
  }
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + offset, size) };
}
