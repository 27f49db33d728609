import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { relativeError, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMLPBackbone } from './backbone';
import { createFlowModel } from './flow-model';
import { describeModel, encodeWeights, loadModel, loadModelDirectory, saveModelDirectory } from './model-io';
import { createDXStudent, createGMStudent } from './policy-heads';

describe('model files', () => {
  beforeAll(() => useBackend('cpu'));

  it('round-trip flow models and GM/DX students exactly through a directory', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-model-'));
    const x = createRandom(1).normalTensor([4, 3]);
    const sigma = tf.tensor1d([0.2, 0.5, 0.7, 1]);
    const models = [
      createFlowModel(createMLPBackbone({ inputDim: 3, width: 16, depth: 2, seed: 5 })),
      createGMStudent(createMLPBackbone({ inputDim: 3, width: 16, depth: 1, seed: 6 }), {
        numComponents: 4,
        logstdHiddenDim: 8,
      }),
      createDXStudent(createMLPBackbone({ inputDim: 3, width: 16, depth: 1, seed: 7 }), {
        numPoints: 3,
        shift: 2,
        segmentSize: 0.25,
      }),
    ];
    for (const [i, model] of models.entries()) {
      const sub = path.join(dir, String(i));
      await saveModelDirectory(sub, model, { sampleShape: [3], sampling: { shift: 2 } });
      const { model: loaded, manifest } = await loadModelDirectory(sub);
      expect(manifest.sampling?.shift).toBe(2);
      const a =
        'velocity' in model
          ? model.velocity(x, sigma)
          : Object.values(model.predict(x, sigma)).find((v) => v instanceof tf.Tensor)!;
      const b =
        'velocity' in loaded
          ? loaded.velocity(x, sigma)
          : Object.values(loaded.predict(x, sigma)).find((v) => v instanceof tf.Tensor)!;
      expect(relativeError(a.dataSync(), b.dataSync())).toBe(0);
      loaded.dispose();
      model.dispose();
    }
    tf.dispose([x, sigma]);
  });

  it('refuses weights that do not fit the manifest, naming what is wrong', () => {
    const model = createFlowModel(createMLPBackbone({ inputDim: 2, width: 8, depth: 1 }));
    const manifest = describeModel(model, { sampleShape: [2] });
    const weights = encodeWeights(model.variables);
    expect(() => loadModel(manifest, weights.subarray(0, weights.length - 4))).toThrow(/weights hold/);
    const renamed = {
      ...manifest,
      variables: manifest.variables.map((v, i) => (i === 0 ? { ...v, name: 'other' } : v)),
    };
    expect(() => loadModel(renamed, weights)).toThrow(/Variable 0 is "other"/);
    expect(() => loadModel({ ...manifest, format: 'x' as never }, weights)).toThrow(/manifest.format/);
    model.dispose();
  });
});
