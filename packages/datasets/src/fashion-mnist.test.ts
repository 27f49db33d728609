import '@tensorflow/tfjs-backend-cpu';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createRandom } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DEBIAN_DIRECTORY,
  loadFashionMnist,
  readIdx,
} from './fashion-mnist';
import { imageDatasetNames, loadImageDataset } from './image-datasets';

/** An IDX file of bytes: magic 0x00000800 + rank, big-endian dims, data. */
function idx(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt8(0x08, 2);
  header.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

/** A tiny Fashion-MNIST-shaped folder: `n` train and `m` test images whose pixels encode their index. */
async function tinyFolder(n: number, m: number, gzip: boolean): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'piflow-fashion-'));
  const write = (name: string, bytes: Buffer) =>
    writeFile(path.join(dir, gzip ? `${name}.gz` : name), gzip ? gzipSync(bytes) : bytes);
  for (const [prefix, count] of [
    ['train', n],
    ['t10k', m],
  ] as const) {
    const pixels = new Uint8Array(count * 784);
    for (let i = 0; i < count; i++) pixels.fill((i * 50) % 256, i * 784, (i + 1) * 784);
    await write(`${prefix}-images-idx3-ubyte`, idx([count, 28, 28], pixels));
    await write(
      `${prefix}-labels-idx1-ubyte`,
      idx(
        [count],
        Uint8Array.from({ length: count }, (_, i) => i % 10),
      ),
    );
  }
  return dir;
}

describe('Fashion-MNIST from IDX files', () => {
  it('reads gzip-compressed and plain IDX folders: train → train, t10k → heldOut, pixels to [−1, 1]', async () => {
    for (const gzip of [true, false]) {
      const data = loadFashionMnist({ directory: await tinyFolder(6, 3, gzip) });
      expect(data.name).toBe('fashion-mnist');
      expect(data.classNames).toEqual(FASHION_MNIST_CLASSES);
      expect([data.train.count, data.heldOut.count]).toEqual([6, 3]);
      expect(Array.from(data.train.labels)).toEqual([0, 1, 2, 3, 4, 5]);
      // image i has every pixel (i·50 mod 256)/255·2 − 1
      expect(data.train.images[0]).toBe(-1);
      expect(data.train.images[784 * 5 + 100]).toBeCloseTo((250 / 255) * 2 - 1, 6);
      expect(data.heldOut.images[784 * 2]).toBeCloseTo((100 / 255) * 2 - 1, 6);
      const { x, labels } = data.batch(4, createRandom(0), 'heldOut');
      expect(x.shape).toEqual([4, 28, 28, 1]);
      expect(labels.dtype).toBe('int32');
      tf.dispose([x, labels]);
    }
  });

  it('says how to install the data when the files are missing, and refuses files that are not IDX', async () => {
    const empty = await mkdtemp(path.join(tmpdir(), 'piflow-fashion-'));
    expect(() => loadFashionMnist({ directory: empty })).toThrow(/apt-get install -y dataset-fashion-mnist/);
    expect(() => loadFashionMnist({ directory: empty })).toThrow(/PIFLOW_FASHION_MNIST_DIR/);
    await writeFile(path.join(empty, 'bad-idx1-ubyte'), Buffer.from([0, 0, 9, 1, 0, 0, 0, 1, 7]));
    expect(() => readIdx(empty, 'bad-idx1-ubyte', 1)).toThrow(/not an IDX file of unsigned bytes/);
    await writeFile(path.join(empty, 'short-idx1-ubyte'), idx([5], new Uint8Array(3)));
    expect(() => readIdx(empty, 'short-idx1-ubyte', 1)).toThrow(/3 data bytes where its header says 5/);
    expect(() => loadFashionMnist(null as never)).toThrow(/options/);
    expect(() => loadImageDataset('cifar')).toThrow(/mnist, fashion-mnist/);
    expect(imageDatasetNames).toEqual(['mnist', 'fashion-mnist']);
  });

  // Debian's dataset-fashion-mnist (scripts/ensure-system-deps.sh installs it; CI must have it).
  const installed = existsSync(FASHION_MNIST_DEBIAN_DIRECTORY);
  it.runIf(installed || process.env.CI)(
    'the Debian package: 60 000 + 10 000 images, 6 000 / 1 000 per class',
    () => {
      const data = loadImageDataset('fashion-mnist');
      expect([data.train.count, data.heldOut.count]).toEqual([60000, 10000]);
      const perClass = new Array(10).fill(0);
      data.train.labels.forEach((l) => perClass[l]++);
      expect(perClass).toEqual(new Array(10).fill(6000));
      let min = Infinity;
      let max = -Infinity;
      for (const v of data.heldOut.images) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect([min, max]).toEqual([-1, 1]);
      expect(loadFashionMnist()).toBe(data); // read once per folder
    },
  );
});
