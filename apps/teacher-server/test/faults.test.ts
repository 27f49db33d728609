// The server against faulty clients, as a real process on loopback: silent, idle, slow and stalled
// connections, uploads beyond the shared body budget, and SIGTERM with connections left open. The timeouts
// are configured short (1.5–8 s); the bounds asserted are generous for a loaded 2-core machine.
import { createRandom } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import { createAnalyticGMTeacher, createRemoteTeacher } from '@piflow/teachers';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  mixture,
  post,
  type RawConnection,
  rawConnection,
  startServer,
  uploadHead,
  velocityFrame,
  waitFor,
  writeMixture,
} from './helpers';

const C = 3;
const MiB = 1024 * 1024;
let mixtureFile: string;

beforeAll(async () => {
  await useBackend('cpu');
  mixtureFile = await writeMixture();
});

const serve = (...args: string[]) =>
  startServer(['--teacher', `analytic-gm:${mixtureFile}`, '--port', '0', '--backend', 'cpu', ...args]);

async function health(url: string) {
  return (await (await fetch(`${url}/v1/health`)).json()) as {
    queue: { served: number };
    buffered: { bytes: number; capacity: number };
  };
}

describe('teacher server under faulty clients', () => {
  it('closes silent, idle, slow-body and stalled connections within 30 s while real clients keep being answered', async () => {
    const server = await serve(
      '--headers-timeout-ms',
      '1500',
      '--body-timeout-ms',
      '1500',
      '--request-timeout-ms',
      '4000',
      '--keep-alive-timeout-ms',
      '1500',
      '--max-body-bytes',
      String(MiB),
    );
    try {
      const silent = await Promise.all(Array.from({ length: 20 }, () => rawConnection(server.port)));
      const partialHeaders = await Promise.all(
        Array.from({ length: 5 }, () =>
          rawConnection(server.port, 'POST /v1/velocity HTTP/1.1\r\nHost: x\r\n'),
        ),
      );
      const idleAfterAnswer = await Promise.all(
        Array.from({ length: 5 }, () =>
          rawConnection(server.port, 'GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
        ),
      );
      // slow bodies: a byte every 200 ms of a 100 kB body (the request timeout ends them)
      const slow = await Promise.all(
        Array.from({ length: 5 }, () => rawConnection(server.port, uploadHead(100_000))),
      );
      const drip = setInterval(() => {
        for (const c of slow) if (!c.socket.destroyed) c.socket.write('a');
      }, 200);
      // stalled bodies: 10 bytes of 100 kB, then nothing (the body timeout ends them)
      const stalled = await Promise.all(
        Array.from({ length: 5 }, () => rawConnection(server.port, `${uploadHead(100_000)}0123456789`)),
      );
      const faulty = [...silent, ...partialHeaders, ...idleAfterAnswer, ...slow, ...stalled];
      const allClosed = Promise.all(faulty.map((c) => c.closed));

      // meanwhile a real client keeps asking (and checks the answers)
      const local = createAnalyticGMTeacher(mixture);
      const remote = await createRemoteTeacher({ url: server.url });
      const random = createRandom(3);
      let answered = 0;
      let faultyOpen = true;
      void allClosed.then(() => (faultyOpen = false));
      const started = performance.now();
      try {
        while ((faultyOpen || answered < 5) && performance.now() - started < 40_000) {
          const x = random.normalTensor([4, C]);
          const sigma = tf.tensor1d([0.1, 0.4, 0.7, 0.9]);
          const [u, expected] = await Promise.all([remote.velocity(x, sigma), local.velocity(x, sigma)]);
          expect(maxAbsDifference(u.dataSync(), expected.dataSync())).toBeLessThanOrEqual(1e-6);
          tf.dispose([x, sigma, u, expected]);
          answered++;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        clearInterval(drip);
      }
      const times = await Promise.race([
        allClosed,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('not all closed')), 5_000)),
      ]);
      expect(Math.max(...times)).toBeLessThan(30_000);
      expect(answered).toBeGreaterThanOrEqual(5);
      expect(remote.stats.calls).toBe(answered);
      // what each was told before being closed
      const statuses = (group: RawConnection[]) => [...new Set(group.map((c) => c.status()))];
      expect(statuses(silent)).toEqual([408]);
      expect(statuses(partialHeaders)).toEqual([408]);
      expect(statuses(idleAfterAnswer)).toEqual([200]);
      expect(statuses(slow)).toEqual([408]);
      expect(statuses(stalled)).toEqual([408]);
      expect(silent[0]!.json()).toMatchObject({ error: { code: 'request_timeout' } });
      expect(stalled[0]!.json()).toMatchObject({
        error: { code: 'body_timeout', field: 'body', message: expect.stringMatching(/10 of 100000 bytes/) },
      });
      // nothing of the stalled and slow bodies is still held
      expect((await health(server.url)).buffered).toEqual({ bytes: 0, capacity: 4 * MiB });
    } finally {
      await server.stop('SIGKILL');
    }
  });

  it('refuses uploads beyond the shared body budget (503, Retry-After) and over the per-request limit (413), then accepts again', async () => {
    const server = await serve(
      '--max-body-bytes',
      String(MiB),
      '--max-buffered-bytes',
      String(4 * MiB),
      '--body-timeout-ms',
      '8000',
    );
    try {
      // 12 stalled 1 MiB uploads: 4 fit in the 4 MiB budget, 8 are refused at once
      const uploads: RawConnection[] = [];
      for (let i = 0; i < 12; i++)
        uploads.push(await rawConnection(server.port, `${uploadHead(MiB)}0123456789`));
      expect(await waitFor(() => uploads.filter((c) => c.status() !== undefined).length >= 8, 10_000)).toBe(
        true,
      );
      const refused = uploads.filter((c) => c.status() === 503);
      const held = uploads.filter((c) => c.status() !== 503);
      expect(refused).toHaveLength(8);
      expect(held).toHaveLength(4);
      for (const c of refused) {
        expect(c.received()).toMatch(/\r\nretry-after: 1\r\n/i);
        expect(c.json()).toMatchObject({ error: { code: 'uploads_full', field: 'body' } });
      }
      await Promise.all(refused.map((c) => c.closed)); // refused connections are closed, not drained
      expect((await health(server.url)).buffered).toEqual({ bytes: 4 * MiB, capacity: 4 * MiB });

      // while the budget is spent, real requests get 503 too (clients retry them), and a chunked body as well
      const good = velocityFrame(new Float32Array(2 * C), [2, C], [0.5, 0.5]);
      const busy = await post(server.url, good);
      expect(busy.status).toBe(503);
      expect(busy.headers.get('retry-after')).toBe('1');
      const chunked = await rawConnection(
        server.port,
        `${uploadHead(undefined)}400\r\n${'a'.repeat(1024)}\r\n`,
      );
      await chunked.closed;
      expect(chunked.status()).toBe(503);
      // a body over the per-request limit is refused from its Content-Length, before any byte is read
      const tooLarge = await rawConnection(server.port, uploadHead(2 * MiB));
      await tooLarge.closed;
      expect(tooLarge.status()).toBe(413);
      expect(tooLarge.json()).toMatchObject({ error: { code: 'body_too_large' } });

      // the stalled uploads time out (408) and give their bytes back: requests are accepted again
      const times = await Promise.all(held.map((c) => c.closed));
      expect(Math.max(...times)).toBeLessThan(30_000);
      for (const c of held) expect(c.status()).toBe(408);
      expect((await post(server.url, good)).status).toBe(200);
      // a chunked body is counted as it arrives: past the per-request limit it gets 413
      const big = await rawConnection(server.port, uploadHead(undefined));
      const chunk = `${(64 * 1024).toString(16)}\r\n${'a'.repeat(64 * 1024)}\r\n`;
      for (let i = 0; i < 17 && !big.socket.destroyed && big.status() === undefined; i++) {
        big.socket.write(chunk);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await big.closed;
      expect(big.status()).toBe(413);
      expect((await health(server.url)).buffered.bytes).toBe(0);
    } finally {
      await server.stop('SIGKILL');
    }
  });

  it('exits 0 within 10 s of SIGTERM with silent, idle and stalled connections open', async () => {
    // default timeouts (they would keep these connections for 10 s and more), a 3 s shutdown deadline
    const server = await serve('--shutdown-timeout-ms', '3000');
    const silent = await rawConnection(server.port);
    const idle = await rawConnection(server.port, 'GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const stalled = await rawConnection(server.port, `${uploadHead(100_000)}0123456789`);
    expect(await waitFor(() => idle.status() === 200, 10_000)).toBe(true);
    const signalled = performance.now();
    const code = await Promise.race([
      server.stop('SIGTERM'),
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000)),
    ]);
    const seconds = (performance.now() - signalled) / 1000;
    if (code === 'timeout') await server.stop('SIGKILL');
    expect(code).toBe(0);
    expect(seconds).toBeLessThan(10);
    // idle and silent connections went at once; the upload in flight was given the deadline
    const [silentClosed, idleClosed, stalledClosed] = await Promise.all([
      silent.closed,
      idle.closed,
      stalled.closed,
    ]);
    expect(Math.max(silentClosed, idleClosed)).toBeLessThan(stalledClosed);
    expect(server.output()).toMatch(/SIGTERM, finishing requests in flight[\s\S]*stopped/);
  });
});
