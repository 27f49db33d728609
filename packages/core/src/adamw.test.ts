import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW } from './adamw';
import { useBackend } from './testing';

// 'cpu-ops': the cpu backend's kernels under another name, so that AdamW takes its tfjs-op path (what WebGPU
// runs) instead of the fused kernels it uses on cpu and wasm.
async function cpuOps(): Promise<void> {
  await useBackend('cpu');
  if (!tf.findBackend('cpu-ops')) {
    tf.registerBackend('cpu-ops', () => new MathBackendCPU());
    for (const kernel of tf.getKernelsForBackend('cpu')) {
      if (!kernel.kernelName.startsWith('Piflow')) tf.registerKernel({ ...kernel, backendName: 'cpu-ops' });
    }
  }
  await tf.setBackend('cpu-ops');
}

describe('AdamW', () => {
  beforeAll(() => useBackend('cpu'));

  it.each([
    [0, 'cpu'],
    [1, 'cpu'],
    [1, 'wasm'],
    [0, 'cpu-ops'],
    [1, 'cpu-ops'],
  ])(
    'matches a float64 reference with warm-up, clipping from update %i and decoupled weight decay (%s)',
    async (gradientClipBegin, backend) => {
      if (backend === 'cpu-ops') await cpuOps();
      else await useBackend(backend as string);
      const w = tf.variable(tf.tensor1d([1, -2, 0.5]));
      const options = {
        learningRate: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        weightDecay: 0.01,
        warmupSteps: 2,
        warmupFactor: 0.5,
        gradientClip: 1,
        gradientClipBegin,
      };
      const opt = new AdamW([w], options);
      const ref = { w: [1, -2, 0.5], m: [0, 0, 0], v: [0, 0, 0] };
      const gradsSeq = [
        [3, 0, -4],
        [0.1, 0.2, 0.3],
        [-1, 1, 0.5],
      ];
      gradsSeq.forEach((g, t) => {
        const norm = Math.hypot(...g);
        const clip = t >= gradientClipBegin && norm > 1 ? 1 / norm : 1;
        const lr = t < 2 ? 0.1 * (0.5 + 0.5 * (t / 2)) : 0.1;
        for (let i = 0; i < 3; i++) {
          const gi = g[i]! * clip;
          ref.m[i] = 0.9 * ref.m[i]! + 0.1 * gi;
          ref.v[i] = 0.95 * ref.v[i]! + 0.05 * gi * gi;
          const update =
            ref.m[i]! / (1 - 0.9 ** (t + 1)) / (Math.sqrt(ref.v[i]! / (1 - 0.95 ** (t + 1))) + 1e-8);
          ref.w[i] = ref.w[i]! * (1 - lr * 0.01) - lr * update;
        }
        const grad = tf.tensor1d(g);
        expect(opt.apply([grad])).toBeCloseTo(norm, 5);
        grad.dispose();
        Array.from(w.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(ref.w[i]!, 5));
      });
      const nan = tf.tensor1d([Number.NaN, 0, 0]);
      const before = Array.from(w.dataSync());
      expect(Number.isNaN(opt.apply([nan]))).toBe(true);
      expect(Array.from(w.dataSync())).toEqual(before);
      const state = opt.getState();
      expect(state.step).toBe(3);
      opt.setState(state);
      tf.dispose([nan, w]);
      opt.dispose();
      // the fused kernels run on cpu and wasm (registered by the first update), the tfjs ops elsewhere
      expect(tf.getKernel('PiflowAdamWUpdate', tf.getBackend()) !== undefined).toBe(backend !== 'cpu-ops');
      await useBackend('cpu');
    },
  );

  it('applies a learning-rate schedule after warm-up (a cosine decay) exactly', () => {
    const w = tf.variable(tf.tensor1d([0]));
    const schedule = (t: number) => 0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * t) / 4));
    const opt = new AdamW([w], { learningRate: 0.2, warmupSteps: 2, warmupFactor: 0.5, schedule });
    const expected = [0.2 * 0.5, 0.2 * 0.75, 0.2, 0.2].map((lr, t) => lr * schedule(t));
    for (const lr of expected) {
      expect(opt.currentLearningRate()).toBeCloseTo(lr, 12);
      const g = tf.tensor1d([1]);
      // with a constant gradient Adam's bias-corrected step is exactly 1/(1 + ε/|g|) ≈ 1: w moves by −lr
      const before = w.dataSync()[0]!;
      opt.apply([g]);
      expect(w.dataSync()[0]! - before).toBeCloseTo(-lr, 6);
      g.dispose();
    }
    expect(opt.step).toBe(4);
    expect(() => new AdamW([w], { schedule: 3 as never })).toThrow(/`schedule`/);
    opt.dispose();
    w.dispose();
  });

  it('minimize takes the gradient of the loss, skips a non-finite update and leaks nothing', async () => {
    const w = tf.variable(tf.tensor1d([3, -1]));
    const unused = tf.variable(tf.tensor1d([5]));
    const opt = new AdamW([w, unused], { learningRate: 0.1, beta2: 0.999 });
    const before = tf.memory().numTensors;
    // loss = Σ w², gradient 2w: norm 2·√10
    const { loss, gradientNorm } = await opt.minimize(() => tf.sum(tf.square(w)));
    expect(loss).toBeCloseTo(10, 5);
    expect(gradientNorm).toBeCloseTo(2 * Math.sqrt(10), 5);
    // first Adam step: −lr·sign(g)
    expect(Array.from(w.dataSync())).toEqual([expect.closeTo(2.9, 5), expect.closeTo(-0.9, 5)]);
    expect(unused.dataSync()[0]).toBe(5);
    const stuck = Array.from(w.dataSync());
    const skipped = await opt.minimize(() => tf.mul(tf.sum(w), Number.NaN));
    expect(Number.isNaN(skipped.gradientNorm)).toBe(true);
    expect(Array.from(w.dataSync())).toEqual(stuck);
    expect(opt.step).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    tf.dispose([w, unused]);
  });
});
