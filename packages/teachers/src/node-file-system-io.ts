import { describeValue, InvalidArgumentError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

export interface FileSystemIOOptions {
  /** Largest weight shard written by `save`, in bytes (default 4 MiB, as the tfjs converter does). */
  shardSizeBytes?: number;
  /** Name of the model JSON file inside the directory (default 'model.json'). */
  modelFileName?: string;
}

type FsPromises = typeof import('node:fs/promises');
type PathModule = typeof import('node:path');

// node:fs is loaded on first use, so browser bundles of this package never reach it.
let nodeModules: Promise<{ fs: FsPromises; path: PathModule }> | undefined;
function loadNodeModules(): Promise<{ fs: FsPromises; path: PathModule }> {
  nodeModules ??= (async () => {
    try {
      const [fs, path] = await Promise.all([import('node:fs/promises'), import('node:path')]);
      return { fs, path: (path as unknown as { default?: PathModule }).default ?? path };
    } catch (error) {
      nodeModules = undefined;
      throw new Error(
        `fileSystemIO needs Node's file system (node:fs): use an http(s):// URL or browser storage here. (${String(error)})`,
      );
    }
  })();
  return nodeModules;
}

function concatBuffers(buffers: ArrayBuffer[]): ArrayBuffer {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), offset);
    offset += b.byteLength;
  }
  return out.buffer;
}

/**
 * A tfjs `IOHandler` that saves and loads a model directory in Node: `model.json` plus weight shards
 * (`group1-shard1of2.bin`, …), the layout of the tfjs converter and of `tf.io.browserFiles`. Works with
 * `LayersModel.save`, `tf.loadLayersModel` and `loadGraphModel`. Shard paths are resolved inside the
 * directory only.
 */
export function fileSystemIO(directory: string, options: FileSystemIOOptions = {}): tf.io.IOHandler {
  if (typeof directory !== 'string' || directory.length === 0) {
    throw new InvalidArgumentError('directory', 'a directory path', describeValue(directory));
  }
  const { shardSizeBytes = 4 * 1024 * 1024, modelFileName = 'model.json' } = options;
  if (!Number.isInteger(shardSizeBytes) || shardSizeBytes < 4) {
    throw new InvalidArgumentError('shardSizeBytes', 'an integer ≥ 4', describeValue(shardSizeBytes));
  }
  if (shardSizeBytes % 4 !== 0) {
    throw new InvalidArgumentError('shardSizeBytes', 'a multiple of 4 bytes', String(shardSizeBytes));
  }

  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      const { fs, path } = await loadNodeModules();
      await fs.mkdir(directory, { recursive: true });
      const data = artifacts.weightData;
      const weights =
        data === undefined ? new ArrayBuffer(0) : Array.isArray(data) ? concatBuffers(data) : data;
      const numShards = Math.max(1, Math.ceil(weights.byteLength / shardSizeBytes));
      const paths: string[] = [];
      for (let i = 0; i < numShards; i++) {
        const name = `group1-shard${i + 1}of${numShards}.bin`;
        paths.push(name);
        const chunk = new Uint8Array(
          weights,
          i * shardSizeBytes,
          Math.min(shardSizeBytes, weights.byteLength - i * shardSizeBytes),
        );
        await fs.writeFile(path.join(directory, name), chunk);
      }
      const manifest: tf.io.WeightsManifestConfig = [{ paths, weights: artifacts.weightSpecs ?? [] }];
      const modelJSON: Record<string, unknown> = {
        modelTopology: artifacts.modelTopology,
        weightsManifest: manifest,
      };
      for (const key of [
        'format',
        'generatedBy',
        'convertedBy',
        'trainingConfig',
        'signature',
        'userDefinedMetadata',
        'modelInitializer',
        'initializerSignature',
      ] as const) {
        if (artifacts[key] !== undefined) modelJSON[key] = artifacts[key];
      }
      await fs.writeFile(path.join(directory, modelFileName), JSON.stringify(modelJSON));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<tf.io.ModelArtifacts> {
      const { fs, path } = await loadNodeModules();
      const root = path.resolve(directory);
      const modelPath = path.join(root, modelFileName);
      let modelJSON: tf.io.ModelJSON;
      try {
        modelJSON = JSON.parse(await fs.readFile(modelPath, 'utf8')) as tf.io.ModelJSON;
      } catch (error) {
        throw new Error(`Could not read the tfjs model JSON at ${modelPath}: ${(error as Error).message}`);
      }
      if (!modelJSON || typeof modelJSON !== 'object' || !('modelTopology' in modelJSON)) {
        throw new Error(`${modelPath} is not a tfjs model JSON (no "modelTopology").`);
      }
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            const file = path.resolve(root, shard);
            if (path.relative(root, file).startsWith('..') || path.isAbsolute(shard)) {
              throw new Error(
                `Weight shard path ${JSON.stringify(shard)} leaves the model directory ${root}.`,
              );
            }
            const bytes = await fs.readFile(file);
            buffers.push(
              bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
            );
          }
        }
        return [specs, concatBuffers(buffers)];
      });
    },
  };
}
