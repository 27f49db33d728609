import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { maxAbsDifference, useBackend } from '@piflow/core/testing';
import { createAnalyticGMTeacher, createRemoteTeacher } from '@piflow/teachers';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNginx, freePort, mixture, type ServerProcess, startServer, writeMixture } from './helpers';

const C = 3;
let servers: ServerProcess[] = [];
let nginx: ChildProcess | undefined;
let nginxExited: Promise<number | null>;
let nginxLog = '';
let balancerUrl: string;
let workDir: string;

async function health(server: ServerProcess): Promise<{ served: number }> {
  return ((await (await fetch(`${server.url}/v1/health`)).json()) as { queue: { served: number } }).queue;
}

// nginx is not installed by the tests: without it this suite is skipped (PIFLOW_TEST_INSTALL_NGINX=1 installs it)
const nginxPath = findNginx();

beforeAll(async () => {
  if (!nginxPath) return;
  await useBackend('cpu');
  const mixtureFile = await writeMixture();
  servers = await Promise.all(
    [0, 1].map(() =>
      startServer(['--teacher', `analytic-gm:${mixtureFile}`, '--port', '0', '--backend', 'cpu']),
    ),
  );
  workDir = await mkdtemp(path.join(tmpdir(), 'piflow-nginx-'));
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs'])
    await mkdir(path.join(workDir, sub));
  const port = await freePort();
  balancerUrl = `http://127.0.0.1:${port}`;
  // An ordinary nginx load balancer: round robin over the two servers; a request that fails on one server
  // (connection refused / reset, 502, 503) is passed to the other (POST included: velocity is idempotent).
  const config = `
worker_processes 1;
daemon off;
pid ${workDir}/nginx.pid;
error_log ${workDir}/logs/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${workDir}/client_body;
  proxy_temp_path ${workDir}/proxy;
  fastcgi_temp_path ${workDir}/fastcgi;
  uwsgi_temp_path ${workDir}/uwsgi;
  scgi_temp_path ${workDir}/scgi;
  client_max_body_size 64m;
  upstream teachers {
    server 127.0.0.1:${servers[0]!.port} max_fails=1 fail_timeout=30s;
    server 127.0.0.1:${servers[1]!.port} max_fails=1 fail_timeout=30s;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://teachers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;
    }
  }
}`;
  const configFile = path.join(workDir, 'nginx.conf');
  await writeFile(configFile, config);
  nginx = spawn(nginxPath, ['-p', workDir, '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stdout!.on('data', (d) => (nginxLog += d));
  nginx.stderr!.on('data', (d) => (nginxLog += d));
  nginxExited = new Promise((resolve) => nginx!.once('exit', resolve));
  // wait until nginx answers through to a server
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${balancerUrl}/v1/health`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 200 || nginx.exitCode !== null) throw new Error(`nginx did not come up:\n${nginxLog}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

afterAll(async () => {
  if (!nginxPath) return;
  nginx?.kill('SIGQUIT');
  await nginxExited;
  await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe.skipIf(!nginxPath)('two teacher servers behind nginx', () => {
  it('keeps answering, with no request lost, when one server is killed mid-run', async () => {
    const local = createAnalyticGMTeacher(mixture);
    const remote = await createRemoteTeacher({ url: balancerUrl, retries: 6, retryDelayMs: 20 });
    const random = createRandom(8);
    const workers = 4;
    const perWorker = 40;
    let done = 0;
    let killed = false;
    let servedBeforeKill: number[] = [];
    const failures: string[] = [];
    const run = async (worker: number) => {
      for (let i = 0; i < perWorker; i++) {
        const batch = 1 + ((worker + i) % 8);
        const x = random.normalTensor([batch, 6, C]);
        const sigma = tf.tensor1d(Array.from({ length: batch }, () => random.uniform()));
        try {
          const u = await remote.velocity(x, sigma);
          const expected = await local.velocity(x, sigma);
          const error = maxAbsDifference(u.dataSync(), expected.dataSync());
          if (!(error <= 1e-6)) failures.push(`worker ${worker} request ${i}: max error ${error}`);
          tf.dispose([u, expected]);
        } catch (error) {
          failures.push(`worker ${worker} request ${i}: ${(error as Error).message}`);
        } finally {
          tf.dispose([x, sigma]);
        }
        done++;
        if (!killed && done >= (workers * perWorker) / 3) {
          killed = true;
          servedBeforeKill = [(await health(servers[0]!)).served, (await health(servers[1]!)).served];
          await servers[0]!.stop('SIGKILL'); // an abrupt failure, not a graceful stop
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, (_, w) => run(w)));
    expect(failures).toEqual([]);
    expect(done).toBe(workers * perWorker);
    expect(remote.stats.calls).toBe(workers * perWorker);
    // both servers carried load before the kill; the survivor carried the rest
    expect(servedBeforeKill[0]).toBeGreaterThan(0);
    expect(servedBeforeKill[1]).toBeGreaterThan(0);
    const survivor = (await health(servers[1]!)).served;
    expect(survivor).toBeGreaterThan(servedBeforeKill[1]!);
    expect(servers[0]!.child.signalCode).toBe('SIGKILL');
    // nginx did meet the dead server and passed those requests on
    const errorLog = await readFile(path.join(workDir, 'logs', 'error.log'), 'utf8');
    expect(errorLog).toMatch(/connect\(\) failed|upstream prematurely closed|reset by peer/);
  });

  it('answers through the balancer once only one server is left', async () => {
    const remote = await createRemoteTeacher({ url: balancerUrl });
    const x = tf.ones([3, C]);
    const u = await remote.velocity(x, 0.5);
    expect(u.shape).toEqual([3, C]);
    tf.dispose([x, u]);
  });
});
