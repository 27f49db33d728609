// The compute queue without timing: a teacher that holds its computation until the test releases it fills the
// slot and the queue in a known order, so the request after them is refused with 503 every time.

import type { Teacher } from '@piflow/core';
import { useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTeacherServer } from '../src';
import { createComputeQueue } from '../src/compute-queue';
import { velocityFrame } from './helpers';

beforeAll(() => useBackend('cpu'));

/** A teacher whose every computation waits for `release()`; `entered` counts computations started. */
function gatedTeacher() {
  let open: () => void = () => {};
  let gate = new Promise<void>((resolve) => (open = resolve));
  const state = { entered: 0 };
  const teacher: Teacher = {
    metadata: { layout: 'vector', sampleShape: [2], conditionNames: [] },
    async velocity(x) {
      state.entered++;
      await gate;
      return tf.neg(x);
    },
  };
  return {
    teacher,
    state,
    release() {
      open();
      gate = Promise.resolve();
    },
  };
}

const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
};

describe('compute queue', () => {
  it('gives `concurrency` slots, queues `maxQueue` waiters in order, refuses the next with 503', async () => {
    const queue = createComputeQueue(1, 2);
    await queue.acquire();
    const order: number[] = [];
    const waiters = [1, 2].map((i) => queue.acquire().then(() => order.push(i)));
    expect(queue.state()).toMatchObject({ active: 1, waiting: 2, capacity: 2 });
    await expect(queue.acquire()).rejects.toMatchObject({ statusCode: 503, code: 'queue_full' });
    queue.release();
    queue.release();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2]);
    queue.release();
    expect(queue.state()).toMatchObject({ active: 0, waiting: 0 });
  });

  it('a server with one slot and one queue place answers the third concurrent request 503, then recovers', async () => {
    const gated = gatedTeacher();
    const server = createTeacherServer({ teacher: gated.teacher, port: 0, concurrency: 1, maxQueue: 1 });
    const body = Buffer.from(velocityFrame(Float32Array.of(1, 2, 3, 4), [2, 2], [0.5, 0.5]));
    const post = () =>
      server.app.inject({
        method: 'POST',
        url: '/v1/velocity',
        headers: { 'content-type': 'application/x-piflow-tensors' },
        payload: body,
      });
    const first = post();
    await until(() => gated.state.entered === 1);
    const second = post();
    await until(() => server.queue().waiting === 1);
    const third = await post();
    expect(third.statusCode).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expect(third.json().error).toMatchObject({ code: 'queue_full' });
    expect(third.json().error.message).toMatch(/busy: 1 running and 1 waiting \(limit 1\)/);
    gated.release();
    expect((await first).statusCode).toBe(200);
    expect((await second).statusCode).toBe(200);
    expect((await post()).statusCode).toBe(200);
    expect(server.queue()).toMatchObject({ active: 0, waiting: 0, served: 3 });
    await server.close();
  });
});
