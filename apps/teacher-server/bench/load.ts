// Load test of the teacher server: a real server process on loopback, 50 concurrent autocannon clients for
// 20 s per request size. Run: pnpm --filter @piflow/teacher-server bench   (DURATION=… CONNECTIONS=… BACKEND=…)
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { decodeFrame, tensorContentType } from '@piflow/teachers';
import autocannon from 'autocannon';
import { startServer, velocityFrame } from '../test/helpers';

const duration = Number(process.env.DURATION ?? 20);
const connections = Number(process.env.CONNECTIONS ?? 50);
const backend = process.env.BACKEND ?? 'wasm';
const random = createRandom(0);
const C = 16;
const K = 8;
const dir = await mkdtemp(path.join(tmpdir(), 'piflow-teacher-bench-'));
const file = path.join(dir, 'mixture.json');
await writeFile(
  file,
  JSON.stringify({
    means: Array.from({ length: K }, () => Array.from({ length: C }, () => random.normal())),
    std: 0.5,
    weights: new Array(K).fill(1 / K),
  }),
);
const server = await startServer([
  '--teacher',
  `analytic-gm:${file}`,
  '--port',
  '0',
  '--backend',
  backend,
  '--max-queue',
  '256',
]);
console.log(
  `server: ${server.url}, backend ${backend}, analytic GM K=${K} C=${C}; ${connections} connections × ${duration} s`,
);
const cases = [
  { name: 'small: x [16, 16]', shape: [16, C] },
  { name: 'latent: x [4, 32, 32, 16] (FLUX 256² latent size)', shape: [4, 32, 32, C] },
];
console.log('| request | body | req/s | samples/s | p50 ms | p99 ms | max ms | errors | non-2xx |');
console.log('|---|---|---|---|---|---|---|---|---|');
try {
  for (const { name, shape } of cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    const batch = shape[0]!;
    const body = Buffer.from(
      velocityFrame(
        random.fillNormal(new Float32Array(size)),
        shape,
        Array.from({ length: batch }, () => random.uniform()),
      ),
    );
    // sanity: one request answers a u of the right shape
    const check = await fetch(`${server.url}/v1/velocity`, {
      method: 'POST',
      headers: { 'content-type': tensorContentType },
      body,
    });
    const u = decodeFrame(new Uint8Array(await check.arrayBuffer()))[0]!;
    if (check.status !== 200 || u.shape.join() !== shape.join())
      throw new Error(`bad answer ${check.status}`);
    const result = await autocannon({
      url: `${server.url}/v1/velocity`,
      method: 'POST',
      headers: { 'content-type': tensorContentType },
      body,
      connections,
      duration,
    });
    const rps = result.requests.average;
    console.log(
      `| ${name} | ${(body.length / 1024).toFixed(1)} KiB | ${rps.toFixed(0)} | ${(rps * batch).toFixed(0)} | ${result.latency.p50} | ${result.latency.p99} | ${result.latency.max} | ${result.errors + result.timeouts} | ${result.non2xx} |`,
    );
  }
} finally {
  await server.stop('SIGTERM');
}
