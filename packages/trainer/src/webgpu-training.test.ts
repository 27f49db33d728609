// π-ID training on tfjs's WebGPU backend in Node (Dawn through @piflow/backend-webgpu; Mesa llvmpipe where
// there is no GPU): the trainer reads the loss, the gradient norm and σ asynchronously, so it runs where
// synchronous readback of GPU values is impossible. The student is the oracle one of the trainer's own tests
// (offsetPosteriorStudent): the exact x0-posterior of an analytic mixture with a learnable offset on every
// component mean, whose π-ID loss vanishes at offset 0.

import { setupWebGPU } from '@piflow/backend-webgpu';
import { AdamW, createAnalyticGMFlow } from '@piflow/core';
import { registerTestBackend, useBackend } from '@piflow/core/testing';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { flowData, flowTeacher } from './__fixtures__/analytic-teacher';
import { offsetPosteriorStudent } from './__fixtures__/students';
import { createPiIDTrainer } from './pi-id-trainer';

registerTestBackend('webgpu', async () => {
  await setupWebGPU({ setBackend: false });
});

async function train(backend: string, steps: number) {
  await useBackend(backend);
  const flow = createAnalyticGMFlow({
    means: [
      [-1, 0.5],
      [1, -0.5],
    ],
    std: 0.3,
  });
  const student = offsetPosteriorStudent(flow, [0.3, -0.2]);
  const losses: number[] = [];
  const trainer = createPiIDTrainer({
    student,
    family: gm,
    teacher: flowTeacher(flow),
    data: flowData(flow),
    batchSize: 16,
    numInferenceSteps: 2,
    substeps: 8,
    optimizer: { learningRate: 0.05 },
    seed: 5,
    onStep: (m) => losses.push(m.loss),
  });
  await trainer.train(steps);
  const offset = Array.from(await student.offset.data());
  const checkpoint = await trainer.toCheckpointAsync();
  student.offset.dispose();
  return { losses, offset, checkpoint };
}

describe('π-ID training on WebGPU in Node', () => {
  it('trains the oracle-offset student like the cpu backend does, and checkpoints without synchronous reads', async () => {
    const onGPU = await train('webgpu', 4);
    const onCpu = await train('cpu', 4);
    await useBackend('webgpu');
    expect(onGPU.losses).toHaveLength(4);
    expect(onGPU.losses.every(Number.isFinite)).toBe(true);
    // Same seed, same data: the same losses and updates up to float32 differences between the backends.
    onGPU.losses.forEach((loss, i) => expect(loss).toBeCloseTo(onCpu.losses[i]!, 4));
    onGPU.offset.forEach((v, i) => expect(v).toBeCloseTo(onCpu.offset[i]!, 4));
    // Training pulls the offset towards the oracle's 0.
    expect(Math.hypot(...onGPU.offset)).toBeLessThan(Math.hypot(0.3, -0.2));
    expect(onGPU.checkpoint.step).toBe(4);
    expect(Array.from(onGPU.checkpoint.variables[0]!)).toEqual(onGPU.offset);
    expect(onGPU.checkpoint.optimizer.m).toHaveLength(1);
  });

  it('clips by the global norm of more gradient tensors than a WebGPU shader stage can bind (8)', async () => {
    // tfjs's WebGPU AddN binds every input to one shader: over 7 inputs it fails validation and returns stale
    // values without an error. The norm is summed pairwise instead; here over 20 variables, as a student has.
    const norms: number[] = [];
    for (const backend of ['webgpu', 'cpu']) {
      await useBackend(backend);
      const variables = Array.from({ length: 20 }, (_, i) => tf.variable(tf.fill([3], i + 1)));
      const gradients = variables.map((_, i) => tf.fill([3], (i % 5) - 2));
      const optimizer = new AdamW(variables, { learningRate: 0.1, gradientClip: 1 });
      norms.push(await optimizer.applyAsync(gradients));
      optimizer.dispose();
      tf.dispose([...variables, ...gradients]);
    }
    // Σ over 20 tensors of 3 × ((i mod 5) − 2)²: 4 × 3 × (4 + 1 + 0 + 1 + 4) = 120.
    expect(norms[0]).toBeCloseTo(Math.sqrt(120), 5);
    expect(norms[1]).toBeCloseTo(Math.sqrt(120), 5);
    await useBackend('webgpu');
  });
});
