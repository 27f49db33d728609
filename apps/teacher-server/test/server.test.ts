import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import {
  createAnalyticGMTeacher,
  createRemoteTeacher,
  decodeFrame,
  encodeFrame,
  fileSystemIO,
  RemoteTeacherError,
  tensorContentType,
} from '@piflow/teachers';
import { describeTeacherContract } from '@piflow/teachers/testing';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeacherSpecRegistry, serveTeacherCommand } from '../src';
import {
  freePort,
  mixture,
  post,
  type ServerProcess,
  startServer,
  velocityFrame,
  writeMixture,
} from './helpers';

const C = 3;
const token = 'test-token-5f1c';
let server: ServerProcess;
let mixtureFile: string;

beforeAll(async () => {
  await useBackend('cpu');
  mixtureFile = await writeMixture();
  server = await startServer([
    '--teacher',
    `analytic-gm:${mixtureFile}`,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--backend',
    'cpu',
    '--max-body-bytes',
    '65536',
    '--max-batch-size',
    '512',
  ]);
});

afterAll(async () => {
  await server?.stop();
});

describeTeacherContract('remote teacher against a real server process', {
  backends: ['cpu'],
  create: () => createRemoteTeacher({ url: server.url }),
  // what the server shows of the analytic teacher, described by the client (a getter: the URL comes later)
  get metadata() {
    return {
      layout: 'vector' as const,
      shift: 1,
      guidance: 'none' as const,
      conditionNames: [],
      description: `remote: analytic Gaussian mixture (K = 3, C = 3, std = 0.3) at ${server?.url}`,
    };
  },
  // the client cannot know C (the analytic teacher takes any positions): the server's 400 says it
  shapeErrorClass: RemoteTeacherError,
  makeInputs: (batch, random) => ({
    x: random.normalTensor([batch, 4, C]),
    sigma: Array.from({ length: batch }, () => 0.05 + 0.9 * random.uniform()),
  }),
  reference: async ({ x, sigma }) => {
    const local = createAnalyticGMTeacher(mixture);
    const s = tf.tensor1d(sigma);
    const u = await local.velocity(x, s);
    const values = u.dataSync();
    tf.dispose([u, s]);
    return values;
  },
  tolerance: 1e-6,
});

describe('remote teacher ↔ teacher server', () => {
  it('returns the in-process velocities for the same inputs (≤ 1e-6), batching concurrent calls', async () => {
    const local = createAnalyticGMTeacher(mixture);
    const remote = await createRemoteTeacher({ url: server.url });
    expect(remote.metadata).toMatchObject({ layout: 'vector', guidance: 'none', shift: 1 });
    const random = createRandom(5);
    const inputs = Array.from({ length: 12 }, (_, i) => ({
      x: random.normalTensor([1 + (i % 4), 5, C]),
      sigma: tf.tensor1d(Array.from({ length: 1 + (i % 4) }, () => random.uniform())),
    }));
    const remoteU = await Promise.all(inputs.map(({ x, sigma }) => remote.velocity(x, sigma)));
    // 12 calls made together → one velocity request (same sample shape)
    expect(remote.stats).toMatchObject({ calls: 12, requests: 1 + 1, retries: 0 }); // metadata + one velocity request
    for (let i = 0; i < inputs.length; i++) {
      const u = await local.velocity(inputs[i]!.x, inputs[i]!.sigma);
      expect(remoteU[i]!.shape).toEqual(inputs[i]!.x.shape);
      expect(maxAbsDifference(remoteU[i]!.dataSync(), u.dataSync())).toBeLessThanOrEqual(1e-6);
      u.dispose();
    }
    // a batch larger than the client's limit is split over several requests
    const split = await createRemoteTeacher({ url: server.url, maxBatchSize: 7 });
    const big = random.normalTensor([20, C]);
    const a = await split.velocity(big, 0.3);
    const b = await local.velocity(big, 0.3);
    expect(split.stats.requests).toBe(1 + 3); // metadata + ⌈20/7⌉
    expect(maxAbsDifference(a.dataSync(), b.dataSync())).toBeLessThanOrEqual(1e-6);
    tf.dispose([...inputs.flatMap(({ x, sigma }) => [x, sigma]), ...remoteU, big, a, b]);
  });

  it('answers health and metadata so the client configures itself', async () => {
    const health = await (await fetch(`${server.url}/v1/health`)).json();
    expect(health).toMatchObject({ status: 'ok', protocol: 'piflow-teacher/1', queue: { capacity: 64 } });
    expect(health.buffered).toEqual({ bytes: 0, capacity: 4 * 65536 });
    const text = await (await fetch(`${server.url}/v1/metadata`)).text();
    expect(text).not.toContain(path.dirname(mixtureFile)); // no server paths
    const metadata = JSON.parse(text);
    expect(metadata).toMatchObject({
      protocol: 'piflow-teacher/1',
      maxBatchSize: 512,
      maxBodyBytes: 65536,
      metadata: { layout: 'vector', shift: 1, guidance: 'none', conditionNames: [] },
    });
  });

  it('answers every bad request with the documented 4xx and a clear message, and keeps serving', async () => {
    const x = Float32Array.from({ length: 2 * C }, (_, i) => i / 10);
    const good = velocityFrame(x, [2, C], [0.5, 0.25]);
    const withNaN = Float32Array.from(x);
    withNaN[3] = Number.NaN;
    const withInf = Float32Array.from(x);
    withInf[5] = Number.NEGATIVE_INFINITY;
    const headerLength = new DataView(good.buffer).getUint32(0, true);
    const garbageHeader = new Uint8Array(good);
    garbageHeader.set(new TextEncoder().encode('{"tensors": ['.padEnd(headerLength, 'x')), 4);
    const corpus: [string, Promise<{ status: number; text(): string }>, number, RegExp][] = [
      ['extra bytes', post(server.url, new Uint8Array([...good, 0, 0, 0, 0])), 400, /header describes/],
      ['truncated body', post(server.url, good.subarray(0, good.length - 6)), 400, /header describes/],
      ['no header length', post(server.url, new Uint8Array([1, 0])), 400, /shorter than the 4-byte header/],
      ['header past the end', post(server.url, new Uint8Array([255, 0, 0, 0, 1])), 400, /runs past the end/],
      ['header not JSON', post(server.url, garbageHeader), 400, /not valid UTF-8 JSON/],
      ['NaN in x', post(server.url, velocityFrame(withNaN, [2, C], [0.5, 0.5])), 400, /non-finite/],
      [
        '-Inf in x',
        post(server.url, velocityFrame(withInf, [2, C], [0.5, 0.5])),
        400,
        /"x" has a non-finite value \(-Infinity\) at flat index 5/,
      ],
      [
        '+Inf σ',
        post(server.url, velocityFrame(x, [2, C], [0.5, Number.POSITIVE_INFINITY])),
        400,
        /sigma\[1\] = Infinity is outside \[0, 1\]/,
      ],
      ['empty body', post(server.url, new Uint8Array(0)), 400, /body of 0 bytes/],
      [
        'NaN σ',
        post(server.url, velocityFrame(x, [2, C], [Number.NaN, 0.5])),
        400,
        /sigma\[0\] = NaN is outside \[0, 1\]/,
      ],
      ['σ > 1', post(server.url, velocityFrame(x, [2, C], [0.5, 1.5])), 400, /sigma\[1\] = 1.5 is outside/],
      ['σ < 0', post(server.url, velocityFrame(x, [2, C], [-0.1, 0.5])), 400, /outside \[0, 1\]/],
      [
        'σ of the wrong length',
        post(server.url, velocityFrame(x, [2, C], [0.5])),
        400,
        /"sigma" must be float32 of shape \[2\]/,
      ],
      [
        'wrong channel count',
        post(server.url, velocityFrame(new Float32Array(8), [2, 4], [0.5, 0.5])),
        400,
        /`x`/,
      ],
      [
        'int32 x',
        post(
          server.url,
          encodeFrame([
            { name: 'x', dtype: 'int32', shape: [1, C], data: new Int32Array(C) },
            { name: 'sigma', dtype: 'float32', shape: [1], data: new Float32Array(1) },
          ]),
        ),
        400,
        /"x" must be float32/,
      ],
      [
        'unknown dtype',
        post(
          server.url,
          (() => {
            const f = new Uint8Array(good);
            const text = new TextDecoder()
              .decode(f.subarray(4, 4 + headerLength))
              .replace('"float32"', '"float64"');
            f.set(new TextEncoder().encode(text), 4);
            return f;
          })(),
        ),
        400,
        /dtype "float64"/,
      ],
      [
        'missing sigma',
        post(server.url, encodeFrame([{ name: 'x', dtype: 'float32', shape: [2, C], data: x }])),
        400,
        /no tensor "sigma"/,
      ],
      [
        'unexpected tensor',
        post(
          server.url,
          velocityFrame(
            x,
            [2, C],
            [0.5, 0.5],
            [{ name: 'condition.labels', dtype: 'float32', shape: [2, 1], data: new Float32Array(2) }],
          ),
        ),
        400,
        /Unexpected tensor "condition.labels"/,
      ],
      [
        'batch over the limit',
        post(server.url, velocityFrame(new Float32Array(513 * C), [513, C], new Array(513).fill(0.5))),
        400,
        /Batch size 513 is outside \[1, 512\]/,
      ],
      ['empty batch', post(server.url, velocityFrame(new Float32Array(0), [0, C], [])), 400, /Batch size 0/],
      ['oversized body', post(server.url, new Uint8Array(70_000)), 413, /exceeds the limit of 65536 bytes/],
      [
        'wrong content type',
        post(server.url, good, { 'content-type': 'application/json' }),
        415,
        /application\/x-piflow-tensors/,
      ],
      [
        'unknown route',
        fetch(`${server.url}/v1/nothing`).then(
          async (r) => ({ status: r.status, text: (await r.text()) as unknown as () => string }) as never,
        ),
        404,
        /No route GET \/v1\/nothing/,
      ],
      [
        'wrong method',
        fetch(`${server.url}/v1/velocity`).then(
          async (r) => ({ status: r.status, text: (await r.text()) as unknown as () => string }) as never,
        ),
        404,
        /No route GET \/v1\/velocity/,
      ],
    ];
    for (const [what, pending, status, message] of corpus) {
      const answer = await pending;
      const text = typeof answer.text === 'function' ? answer.text() : (answer.text as unknown as string);
      expect({ what, status: answer.status }).toEqual({ what, status });
      expect(JSON.parse(text)).toMatchObject({
        error: { code: expect.any(String), message: expect.stringMatching(message) },
      });
      // and it still serves a good request
      const ok = await post(server.url, good);
      expect({ what, status: ok.status }).toEqual({ what, status: 200 });
      expect(decodeFrame(ok.bytes)[0]!.shape).toEqual([2, C]);
    }
    // a client that sends half its body and hangs up
    await new Promise<void>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1', () => {
        socket.write(
          `POST /v1/velocity HTTP/1.1\r\nHost: x\r\nContent-Type: ${tensorContentType}\r\nContent-Length: ${good.length}\r\n\r\n`,
        );
        socket.write(good.subarray(0, 10));
        socket.destroy();
        resolve();
      });
      socket.on('error', reject);
    });
    expect((await post(server.url, good)).status).toBe(200);
  });

  it('turns server answers into errors that say what the server answered', async () => {
    // the client validates before sending, so forge a bad body underneath it with the fetch hook
    const forging = await createRemoteTeacher({
      url: server.url,
      fetch: (input, init) => {
        if (String(input).endsWith('/v1/velocity')) {
          return fetch(input, { ...init, body: velocityFrame(new Float32Array(C), [1, C], [2]) as BodyInit });
        }
        return fetch(input, init);
      },
    });
    const x = tf.zeros([1, C]);
    await expect(forging.velocity(x, 0.5)).rejects.toThrow(RemoteTeacherError);
    await expect(forging.velocity(x, 0.5)).rejects.toThrow(
      /answered 400 Bad Request: sigma\[0\] = 2 is outside \[0, 1\]/,
    );
    // nothing listening: bounded retries, then an error naming the cause
    const unreachable = createRemoteTeacher({
      url: `http://127.0.0.1:${await freePort()}`,
      retries: 2,
      retryDelayMs: 1,
    });
    await expect(unreachable).rejects.toThrow(/failed after 3 attempts; last: fetch failed \(ECONNREFUSED\)/);
    tf.dispose(x);
  });
});

describe('teacher server options', () => {
  it('requires the bearer token when started with one', async () => {
    const secured = await startServer(
      ['--teacher', `analytic-gm:${mixtureFile}`, '--port', '0', '--backend', 'cpu'],
      {
        PIFLOW_TEACHER_TOKEN: token,
      },
    );
    try {
      const good = velocityFrame(new Float32Array(C), [1, C], [0.5]);
      const missing = await post(secured.url, good);
      expect(missing.status).toBe(401);
      expect(missing.headers.get('www-authenticate')).toBe('Bearer');
      expect(JSON.parse(missing.text()).error.message).toMatch(/needs an Authorization: Bearer/);
      const wrong = await post(secured.url, good, { authorization: 'Bearer nope' });
      expect(wrong.status).toBe(401);
      expect(JSON.parse(wrong.text()).error.message).toMatch(/token is wrong/);
      expect((await fetch(`${secured.url}/v1/metadata`)).status).toBe(401);
      expect((await fetch(`${secured.url}/v1/health`)).status).toBe(200);
      await expect(createRemoteTeacher({ url: secured.url })).rejects.toThrow(/answered 401 Unauthorized/);
      const remote = await createRemoteTeacher({ url: secured.url, token });
      const x = tf.ones([2, C]);
      const u = await remote.velocity(x, 0.5);
      expect(u.shape).toEqual([2, C]);
      tf.dispose([x, u]);
    } finally {
      expect(await secured.stop('SIGTERM')).toBe(0);
    }
  });

  it('answers 503 with Retry-After when its queue is full, and finishes in-flight work on SIGTERM', async () => {
    // a tfjs teacher (served through the `tfjs:<dir>` kind) heavy enough that requests pile up
    const dir = path.join(path.dirname(mixtureFile), 'slow-mlp');
    const x = tfl.input({ shape: [C], name: 'x' });
    const t = tfl.input({ shape: [1], name: 'timestep' });
    let h = tfl.layers.concatenate().apply([x, t]) as tfl.SymbolicTensor;
    for (let i = 0; i < 3; i++)
      h = tfl.layers.dense({ units: 1024, activation: 'relu' }).apply(h) as tfl.SymbolicTensor;
    const model = tfl.model({
      inputs: [x, t],
      outputs: tfl.layers.dense({ units: C }).apply(h) as tfl.SymbolicTensor,
    });
    await model.save(fileSystemIO(dir));
    model.dispose();
    await writeFile(
      path.join(dir, 'teacher.json'),
      JSON.stringify({ predictionType: 'velocity', inputs: { x: 'x', timestep: 'timestep' } }),
    );
    const busy = await startServer([
      '--teacher',
      `tfjs:${dir}`,
      '--port',
      '0',
      '--backend',
      'cpu',
      '--max-queue',
      '0',
      '--log',
    ]);
    try {
      const metadata = await (await fetch(`${busy.url}/v1/metadata`)).json();
      expect(metadata.metadata).toMatchObject({ layout: 'vector', sampleShape: [C], conditionNames: [] });
      const body = velocityFrame(new Float32Array(128 * C).fill(0.1), [128, C], new Array(128).fill(0.5));
      // A burst of 12 requests against one computation slot and no queue: some must be refused. Whether one
      // burst overlaps depends on scheduling on a loaded machine, so up to 5 bursts are sent.
      let answers: Awaited<ReturnType<typeof post>>[] = [];
      for (let burst = 0; burst < 5; burst++) {
        answers = await Promise.all(Array.from({ length: 12 }, () => post(busy.url, body)));
        if (answers.some((a) => a.status === 503)) break;
      }
      const statuses = answers.map((a) => a.status);
      expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
      expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(1);
      const rejected = answers.find((a) => a.status === 503)!;
      expect(rejected.headers.get('retry-after')).toBe('1');
      expect(JSON.parse(rejected.text()).error).toMatchObject({ code: 'queue_full' });
      expect(JSON.parse(rejected.text()).error.message).toMatch(/busy: 1 running and 0 waiting \(limit 0\)/);
      // SIGTERM while a request is in flight: it is answered, then the process exits 0
      const received = () => busy.output().split('incoming request').length;
      const before = received();
      const inFlight = post(busy.url, body);
      while (received() === before) await new Promise((resolve) => setTimeout(resolve, 2));
      const exit = busy.stop('SIGTERM');
      expect((await inFlight).status).toBe(200);
      expect(await exit).toBe(0);
      expect(busy.output()).toMatch(/finishing requests in flight[\s\S]*stopped/);
    } finally {
      await busy.stop('SIGKILL');
    }
  });

  it('refuses unknown teacher kinds and unreadable files with a clear message', async () => {
    // as a process: exit code 1 and the reason on stderr
    await expect(startServer(['--teacher', 'nope:x', '--port', '0'])).rejects.toThrow(
      /kind one of "analytic-gm", "tfjs"/,
    );
    // the same parser and command in-process
    const registry = createTeacherSpecRegistry();
    await expect(registry.load('analytic-gm:/does/not/exist.json')).rejects.toThrow(/exist\.json \(ENOENT\)/);
    expect(() => registry.register('analytic-gm', async () => createAnalyticGMTeacher(mixture))).toThrow(
      /not registered yet/,
    );
    const command = serveTeacherCommand(registry)
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    await expect(
      command.parseAsync(['--teacher', 'analytic-gm:x.json', '--port', '70000'], { from: 'user' }),
    ).rejects.toThrow(/--port must be an integer in \[0, 65535\]/);
  });
});
