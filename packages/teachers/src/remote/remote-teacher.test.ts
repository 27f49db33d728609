import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAnalyticGMFlow, InvalidArgumentError } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FrameError, protocolVersion, tensorContentType } from './protocol';
import { createRemoteTeacher, RemoteTeacherError } from './remote-teacher';

const flow = createAnalyticGMFlow({
  means: [
    [1, -1],
    [-1, 0.5],
  ],
  std: 0.4,
});

/**
 * A minimal real HTTP server speaking piflow-teacher/1 for the analytic flow, with scripted failures:
 * `failures` lists what the first velocity requests get (a status, 'hang' or 'reset'), then it answers.
 */
function startProtocolServer(
  failures: (number | 'hang' | 'reset')[] = [],
  advertised: { conditionNames?: string[]; conditions?: Record<string, unknown> } = {},
) {
  const seen: { batch: number }[] = [];
  const handler = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (request.url === '/v1/metadata') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          protocol: protocolVersion,
          metadata: {
            layout: 'vector',
            sampleShape: [2],
            shift: 1,
            guidance: 'none',
            conditionNames: advertised.conditionNames ?? [],
          },
          maxBatchSize: 8,
          maxBodyBytes: 1 << 20,
          ...(advertised.conditions ? { conditions: advertised.conditions } : {}),
        }),
      );
      return;
    }
    const body = Buffer.concat(chunks);
    const tensors = decodeFrame(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    const x = tensors.find((t) => t.name === 'x')!;
    const sigma = tensors.find((t) => t.name === 'sigma')!;
    seen.push({ batch: x.shape[0]! });
    const failure = failures.shift();
    if (failure === 'hang') return; // never answers
    if (failure === 'reset') {
      request.socket.destroy();
      return;
    }
    if (typeof failure === 'number') {
      response
        .writeHead(failure, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'scripted', message: `scripted failure ${failure}` } }));
      return;
    }
    const u = flow.velocityFloat64(
      x.data,
      Array.from({ length: x.data.length / 2 }, (_, i) => sigma.data[Math.floor(i)]!),
    );
    const frame = encodeFrame([{ name: 'u', dtype: 'float32', shape: x.shape, data: Float32Array.from(u) }]);
    response.writeHead(200, { 'content-type': tensorContentType }).end(frame);
  };
  const server: Server = createServer((request, response) => void handler(request, response));
  return new Promise<{ url: string; seen: typeof seen; server: Server }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }),
    ),
  );
}

const open: Server[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

describe('piflow-teacher/1 frames', () => {
  it('round-trip float32 and int32 tensors with the data 4-byte aligned', () => {
    const frame = encodeFrame([
      { name: 'x', dtype: 'float32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, Number.NaN]) },
      { name: 'labels', dtype: 'int32', shape: [2], data: Int32Array.from([7, -1]) },
    ]);
    const headerLength = new DataView(frame.buffer).getUint32(0, true);
    expect((4 + headerLength) % 4).toBe(0);
    expect(frame.length).toBe(4 + headerLength + 8 * 4);
    const [x, labels] = decodeFrame(frame);
    expect(x).toMatchObject({ name: 'x', dtype: 'float32', shape: [2, 3] });
    expect(Array.from(x!.data).slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(Number.isNaN(x!.data[5])).toBe(true);
    expect(Array.from(labels!.data)).toEqual([7, -1]);
    // an unaligned view of the same bytes decodes too
    const shifted = new Uint8Array(frame.length + 1);
    shifted.set(frame, 1);
    expect(Array.from(decodeFrame(shifted.subarray(1))[1]!.data)).toEqual([7, -1]);
  });

  it('refuses frames whose length, header or tensors are wrong', () => {
    const good = encodeFrame([{ name: 'x', dtype: 'float32', shape: [2], data: new Float32Array(2) }]);
    expect(() => decodeFrame(good.subarray(0, good.length - 1))).toThrow(/header describes/);
    expect(() => decodeFrame(new Uint8Array(3))).toThrow(FrameError);
    const duplicate = encodeFrame([
      { name: 'x', dtype: 'float32', shape: [1], data: new Float32Array(1) },
      { name: 'x', dtype: 'float32', shape: [1], data: new Float32Array(1) },
    ]);
    expect(() => decodeFrame(duplicate)).toThrow(/appears twice/);
    expect(() =>
      encodeFrame([{ name: 'x', dtype: 'float32', shape: [3], data: new Float32Array(2) }]),
    ).toThrow(/2 values for shape \[3\]/);
  });
});

describe('createRemoteTeacher', () => {
  beforeAll(() => useBackend('cpu'));

  it('configures itself from the metadata and splits batches at the server limit', async () => {
    const server = await startProtocolServer();
    open.push(server.server);
    const teacher = await createRemoteTeacher({ url: server.url });
    expect(teacher.metadata).toMatchObject({ layout: 'vector', sampleShape: [2], shift: 1 });
    const x = tf.tensor2d(
      Array.from({ length: 40 }, (_, i) => Math.sin(i)),
      [20, 2],
    );
    const u = await teacher.velocity(x, 0.3);
    expect(server.seen.map((s) => s.batch)).toEqual([8, 8, 4]);
    expect(maxAbsDifference(u.dataSync(), flow.velocityFloat64(x.dataSync(), 0.3))).toBeLessThan(1e-6);
    // local validation against the advertised sample shape happens before any request
    const wrong = tf.zeros([2, 3]);
    await expect(teacher.velocity(wrong, 0.3)).rejects.toThrow(InvalidArgumentError);
    expect(server.seen).toHaveLength(3);
    tf.dispose([x, u, wrong]);
  });

  it('retries 503, 502, resets and timeouts with growing backoff, then succeeds', async () => {
    const server = await startProtocolServer([503, 'reset', 502, 'hang']);
    open.push(server.server);
    const waits: number[] = [];
    const jitter = [1, 0.5, 0.25, 1];
    const teacher = await createRemoteTeacher({
      url: server.url,
      retries: 4,
      retryDelayMs: 40,
      timeoutMs: 300,
      random: () => jitter[waits.length]!,
      sleep: async (ms) => void waits.push(ms), // the injected clock: record the backoff, do not wait
    });
    const x = tf.ones([3, 2]);
    const u = await teacher.velocity(x, 0.5);
    expect(teacher.stats).toMatchObject({ calls: 1, retries: 4 });
    expect(server.seen).toHaveLength(5);
    // full-jitter exponential backoff: base·2ⁿ·jitter before each retry
    expect(waits).toEqual([40 * 1, 80 * 0.5, 160 * 0.25, 320 * 1]);
    expect(maxAbsDifference(u.dataSync(), flow.velocityFloat64(x.dataSync(), 0.5))).toBeLessThan(1e-6);
    tf.dispose([x, u]);
  });

  it('gives up after the bounded retries and says what the server answered last', async () => {
    const server = await startProtocolServer([503, 503, 503]);
    open.push(server.server);
    const teacher = await createRemoteTeacher({ url: server.url, retries: 2, retryDelayMs: 1 });
    const x = tf.ones([1, 2]);
    const error = await teacher.velocity(x, 0.5).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteTeacherError);
    expect((error as RemoteTeacherError).message).toMatch(
      /failed after 3 attempts; last: 503 Service Unavailable: scripted failure 503/,
    );
    expect(error).toMatchObject({ status: 503, code: 'scripted', attempts: 3 });
    tf.dispose(x);
  });

  it('does not retry client errors', async () => {
    const server = await startProtocolServer([400]);
    open.push(server.server);
    const teacher = await createRemoteTeacher({ url: server.url, retries: 3, retryDelayMs: 1 });
    const x = tf.ones([1, 2]);
    await expect(teacher.velocity(x, 0.5)).rejects.toThrow(/answered 400 Bad Request: scripted failure 400/);
    expect(server.seen).toHaveLength(1);
    tf.dispose(x);
  });

  it('checks conditioning inputs against the specs the server advertises, before any request', async () => {
    const server = await startProtocolServer([], {
      conditionNames: ['labels'],
      conditions: { labels: { dtype: 'int32', rowShape: [], classes: 3 } },
    });
    open.push(server.server);
    const teacher = await createRemoteTeacher({ url: server.url });
    const x = tf.ones([2, 2]);
    const cases: [tf.Tensor, RegExp][] = [
      [
        tf.tensor1d([0, 3], 'int32'),
        /`condition.labels`: expected class indices in \[0, 3\).*3 at flat index 1/,
      ],
      [tf.tensor1d([-1, 0], 'int32'), /-1 at flat index 0/],
      [tf.tensor1d([0, 1], 'float32'), /expected an int32 tensor of shape \[B\], received float32 \[2\]/],
      [tf.tensor2d([[0], [1]], [2, 1], 'int32'), /received int32 \[2, 1\]/],
    ];
    for (const [labels, message] of cases) {
      await expect(teacher.velocity(x, 0.5, { labels })).rejects.toThrow(InvalidArgumentError);
      await expect(teacher.velocity(x, 0.5, { labels })).rejects.toThrow(message);
    }
    expect(server.seen).toHaveLength(0);
    const good = tf.tensor1d([0, 2], 'int32');
    const u = await teacher.velocity(x, 0.5, { labels: good });
    expect(u.shape).toEqual([2, 2]);
    expect(server.seen).toHaveLength(1);
    tf.dispose([x, good, u, ...cases.map(([labels]) => labels)]);
  });

  it('validates its options', async () => {
    await expect(createRemoteTeacher({ url: 'ftp://x' })).rejects.toThrow(/url/);
    await expect(createRemoteTeacher({ url: 'http://127.0.0.1:1', retries: -1 })).rejects.toThrow(/retries/);
    await expect(createRemoteTeacher({ url: 'http://127.0.0.1:1', token: '' })).rejects.toThrow(/token/);
  });
});
