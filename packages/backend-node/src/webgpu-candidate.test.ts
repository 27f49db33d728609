import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { createBackendRegistry } from './resolve-backend';

// The real WebGPU path in Node: @piflow/backend-webgpu (a devDependency here, an optional package for users)
// set up through Dawn (the `webgpu` package), loaded by name through the loader like every optional package.
describe('webgpu candidate (Dawn)', () => {
  it('initialises @piflow/backend-webgpu through setupWebGPU and computes on the webgpu backend', async () => {
    const registry = createBackendRegistry({ loader: (specifier) => import(/* @vite-ignore */ specifier) });
    const result = await registry.resolve({ prefer: 'webgpu', fallback: false });
    expect(result.name).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const b = tf.tensor2d([
      [5, 6],
      [7, 8],
    ]);
    const y = tf.matMul(a, b);
    expect(Array.from(await y.data())).toEqual([19, 22, 43, 50]);
    tf.dispose([a, b, y]);
  });
});
