// Conditioning inputs (class labels) and what the server shows about itself: a real server process serving a
// class-conditional teacher (test/fixtures/labelled-teacher-server.ts), and the same checks in-process.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { useBackend } from '@piflow/core/testing';
import { createAnalyticGMTeacher, createRemoteTeacher, decodeFrame, fileSystemIO } from '@piflow/teachers';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTeacherServer,
  createTeacherSpecRegistry,
  serveTeacherCommand,
  type TeacherMetadataWithConditions,
} from '../src';
import { mixture, post, type ServerProcess, startServer, velocityFrame, writeMixture } from './helpers';

const C = 3;
let server: ServerProcess;
let mixtureFile: string;

beforeAll(async () => {
  await useBackend('cpu');
  mixtureFile = await writeMixture();
  server = await startServer(
    ['--teacher', `labelled:${mixtureFile}`, '--port', '0', '--backend', 'cpu'],
    {},
    'test/fixtures/labelled-teacher-server.ts',
  );
});

afterAll(async () => {
  await server?.stop();
});

const x = Float32Array.from({ length: 2 * C }, (_, i) => i / 10);
const labels = (data: number[], shape = [data.length], dtype: 'int32' | 'float32' = 'int32') => ({
  name: 'condition.labels',
  dtype,
  shape,
  data: dtype === 'int32' ? Int32Array.from(data) : Float32Array.from(data),
});
const frame = (label: ReturnType<typeof labels>, xData = x, sigma = [0.5, 0.25]) =>
  velocityFrame(xData, [2, C], sigma, [label]);

describe('a class-conditional teacher served by a real process', () => {
  it('shows the declared classes and no server path in its metadata', async () => {
    const text = await (await fetch(`${server.url}/v1/metadata`)).text();
    expect(text).not.toContain(path.dirname(mixtureFile));
    const metadata = JSON.parse(text);
    expect(metadata).toMatchObject({
      conditions: { labels: { dtype: 'int32', rowShape: [], classes: 3 } },
      metadata: { conditionNames: ['labels'], description: 'labelled:mixture.json' },
    });
  });

  it('answers every bad labels tensor and non-finite value with 400 naming the field, and keeps serving', async () => {
    const withValue = (index: number, value: number) => {
      const copy = Float32Array.from(x);
      copy[index] = value;
      return copy;
    };
    const good = frame(labels([0, 2]));
    const corpus: [string, Uint8Array, string, RegExp][] = [
      ['label = classes', frame(labels([0, 3])), 'condition.labels', /labels\[1\] = 3 .*\[0, 3\)/],
      ['negative label', frame(labels([-1, 0])), 'condition.labels', /labels\[0\] = -1/],
      ['huge label', frame(labels([100_000, 0])), 'condition.labels', /= 100000 is not a class/],
      [
        'float32 labels',
        frame(labels([0, 1], [2], 'float32')),
        'condition.labels',
        /must be int32 class indices/,
      ],
      [
        'non-integer labels',
        frame(labels([0.5, 1], [2], 'float32')),
        'condition.labels',
        /non-integer value 0.5 at flat index 0/,
      ],
      [
        'labels [B, 1]',
        frame(labels([0, 1], [2, 1])),
        'condition.labels',
        /shape \[2, 1\]; this teacher takes \[2\]/,
      ],
      ['labels of length 3', frame(labels([0, 1, 2])), 'condition.labels', /batch must be 2, the batch of x/],
      ['labels of length 1', frame(labels([0])), 'condition.labels', /batch must be 2/],
      ['scalar labels', frame(labels([1], [])), 'condition.labels', /shape \[\]/],
      [
        'missing labels',
        velocityFrame(x, [2, C], [0.5, 0.25]),
        'condition.labels',
        /no tensor "condition.labels"/,
      ],
      [
        '+Inf in x',
        frame(labels([0, 1]), withValue(1, Number.POSITIVE_INFINITY)),
        'x',
        /non-finite value \(Infinity\)/,
      ],
      [
        '-Inf in x',
        frame(labels([0, 1]), withValue(4, Number.NEGATIVE_INFINITY)),
        'x',
        /\(-Infinity\) at flat index 4/,
      ],
      ['NaN in x', frame(labels([0, 1]), withValue(0, Number.NaN)), 'x', /\(NaN\) at flat index 0/],
      ['+Inf σ', frame(labels([0, 1]), x, [Number.POSITIVE_INFINITY, 0.5]), 'sigma', /sigma\[0\] = Infinity/],
      [
        '-Inf σ',
        frame(labels([0, 1]), x, [0.5, Number.NEGATIVE_INFINITY]),
        'sigma',
        /sigma\[1\] = -Infinity/,
      ],
      ['NaN σ', frame(labels([0, 1]), x, [Number.NaN, 0.5]), 'sigma', /sigma\[0\] = NaN/],
    ];
    for (const [what, body, field, message] of corpus) {
      const answer = await post(server.url, body);
      expect({ what, status: answer.status }).toEqual({ what, status: 400 });
      expect(answer.headers.get('content-type')).toMatch(/application\/json/);
      expect({ what, error: JSON.parse(answer.text()).error }).toMatchObject({
        what,
        error: { code: 'bad_request', field, message: expect.stringMatching(message) },
      });
    }
    const ok = await post(server.url, good);
    expect(ok.status).toBe(200);
    expect(decodeFrame(ok.bytes)[0]!.shape).toEqual([2, C]);
  });

  it('lets the remote client refuse out-of-range labels before sending', async () => {
    const remote = await createRemoteTeacher({ url: server.url });
    expect(remote.server.conditions).toEqual({ labels: { dtype: 'int32', rowShape: [], classes: 3 } });
    const xs = tf.ones([2, C]);
    const bad = tf.tensor1d([1, 7], 'int32');
    await expect(remote.velocity(xs, 0.5, { labels: bad })).rejects.toThrow(/class indices in \[0, 3\)/);
    const okLabels = tf.tensor1d([1, 2], 'int32');
    const u = await remote.velocity(xs, 0.5, { labels: okLabels });
    expect(u.shape).toEqual([2, C]);
    expect(remote.stats.requests).toBe(2); // metadata + the good call
    tf.dispose([xs, bad, okLabels, u]);
  });
});

describe('conditions and metadata in-process', () => {
  const labelled = () => {
    const teacher = createAnalyticGMTeacher(mixture);
    return {
      ...teacher,
      velocity: (xs: tf.Tensor, sigma: tf.Tensor1D | number) => teacher.velocity(xs, sigma),
      metadata: {
        ...teacher.metadata,
        conditionNames: ['labels'],
        description: '/srv/secret/models/mnist/teacher',
        source: '/srv/secret/models/mnist',
      } as typeof teacher.metadata,
    };
  };
  const inject = (app: ReturnType<typeof createTeacherServer>['app'], body: Uint8Array) =>
    app.inject({
      method: 'POST',
      url: '/v1/velocity',
      headers: { 'content-type': 'application/x-piflow-tensors' },
      payload: Buffer.from(body),
    });

  it('shortens paths in the description, shows only known metadata fields, and takes a given description', async () => {
    const server = createTeacherServer({ teacher: labelled(), port: 0 });
    const shown = (await server.app.inject({ url: '/v1/metadata' })).json();
    expect(JSON.stringify(shown)).not.toContain('/srv/secret');
    expect(shown.metadata.description).toBe('teacher');
    expect(shown.metadata).not.toHaveProperty('source');
    // nothing declared about the labels: only their batch and finite values are checked
    expect(shown).not.toHaveProperty('conditions');
    const named = createTeacherServer({ teacher: labelled(), port: 0, description: 'mnist teacher' });
    expect((await named.app.inject({ url: '/v1/metadata' })).json().metadata.description).toBe(
      'mnist teacher',
    );
    await Promise.all([server.close(), named.close()]);
  });

  it('takes class counts from its options, and checks them', async () => {
    const server = createTeacherServer({
      teacher: labelled(),
      port: 0,
      conditions: { labels: { classes: 2 } },
    });
    expect((await inject(server.app, frame(labels([0, 1])))).statusCode).toBe(200);
    const out = await inject(server.app, frame(labels([0, 2])));
    expect(out.statusCode).toBe(400);
    expect(out.json().error).toMatchObject({
      field: 'condition.labels',
      message: expect.stringMatching(/\[0, 2\)/),
    });
    // a 3-channel one-hot input, declared so, replaces the convention
    const oneHot = createTeacherServer({
      teacher: labelled(),
      port: 0,
      conditions: { labels: { dtype: 'float32', rowShape: [3] } },
    });
    const oneHotFrame = frame({
      name: 'condition.labels',
      dtype: 'float32',
      shape: [2, 3],
      data: new Float32Array(6),
    });
    expect((await inject(oneHot.app, oneHotFrame)).statusCode).toBe(200);
    await Promise.all([server.close(), oneHot.close()]);
    const teacher = labelled();
    expect(() => createTeacherServer({ teacher, conditions: { nope: { classes: 2 } } })).toThrow(
      /`conditions.nope`: expected one of the teacher's conditioning inputs \("labels"\)/,
    );
    expect(() => createTeacherServer({ teacher, conditions: { labels: { classes: 0 } } })).toThrow(
      /conditions.labels.classes/,
    );
    expect(() =>
      createTeacherServer({ teacher, conditions: { labels: { classes: 4, dtype: 'float32' } } }),
    ).toThrow(/"int32" for class indices/);
    expect(() => createTeacherServer({ teacher, maxBodyBytes: 1024, maxBufferedBytes: 512 })).toThrow(
      /maxBufferedBytes/,
    );
    expect(() => createTeacherServer({ teacher, headersTimeoutMs: 5000, requestTimeoutMs: 1000 })).toThrow(
      /headersTimeoutMs/,
    );
    const command = serveTeacherCommand()
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    await expect(
      command.parseAsync(['--teacher', 'analytic-gm:x.json', '--classes', 'labels=ten'], { from: 'user' }),
    ).rejects.toThrow(/--classes takes a class count like 10/);
    await expect(
      serveTeacherCommand()
        .exitOverride()
        .configureOutput({ writeErr: () => {}, writeOut: () => {} })
        .parseAsync(['--teacher', 'analytic-gm:x.json', '--body-timeout-ms', '0x10'], { from: 'user' }),
    ).rejects.toThrow(/--body-timeout-ms must be an integer/);
  });

  it("takes the row shapes of a tfjs teacher's conditioning inputs from its model, and classes from teacher.json", async () => {
    const dir = path.join(path.dirname(mixtureFile), 'one-hot-teacher');
    const xs = tfl.input({ shape: [C], name: 'x' });
    const t = tfl.input({ shape: [1], name: 't' });
    const label = tfl.input({ shape: [4], name: 'label' });
    const hidden = tfl.layers.concatenate().apply([xs, t, label]) as tfl.SymbolicTensor;
    const model = tfl.model({
      inputs: [xs, t, label],
      outputs: tfl.layers.dense({ units: C }).apply(hidden) as tfl.SymbolicTensor,
    });
    await model.save(fileSystemIO(dir));
    model.dispose();
    const inputs = { x: 'x', timestep: 't', condition: { labels: 'label' } };
    await writeFile(path.join(dir, 'teacher.json'), JSON.stringify({ inputs }));
    const registry = createTeacherSpecRegistry();
    const teacher = await registry.load(`tfjs:${dir}`);
    expect((teacher.metadata as TeacherMetadataWithConditions).conditions).toEqual({
      labels: { rowShape: [4] },
    });
    const server = createTeacherServer({ teacher, port: 0 });
    const oneHot = (shape: number[]) =>
      velocityFrame(
        x,
        [2, C],
        [0.5, 0.25],
        [
          {
            name: 'condition.labels',
            dtype: 'float32',
            shape,
            data: new Float32Array(shape[0]! * (shape[1] ?? 1)),
          },
        ],
      );
    expect((await inject(server.app, oneHot([2, 4]))).statusCode).toBe(200);
    for (const shape of [[2, 5], [2]]) {
      const out = await inject(server.app, oneHot(shape));
      expect({ shape, status: out.statusCode }).toEqual({ shape, status: 400 });
      expect(out.json().error).toMatchObject({
        field: 'condition.labels',
        message: expect.stringMatching(/\[2, 4\]/),
      });
    }
    await server.close();
    teacher.dispose?.();
    // teacher.json may declare more, e.g. class indices (then int32 [B]); and is checked
    await writeFile(path.join(dir, 'teacher.json'), JSON.stringify({ inputs, conditions: { labels: 7 } }));
    await expect(registry.load(`tfjs:${dir}`)).rejects.toThrow(/"conditions" in .*teacher.json/);
  });

  it('answers a teacher failure with 500 and no server path', async () => {
    const teacher = {
      ...labelled(),
      velocity: async () => {
        throw new Error('cannot read /srv/secret/weights.bin');
      },
    };
    const server = createTeacherServer({ teacher, port: 0 });
    const out = await inject(server.app, frame(labels([0, 1])));
    expect(out.statusCode).toBe(500);
    expect(out.json().error.message).toBe('The teacher failed: cannot read weights.bin');
    await server.close();
  });
});
