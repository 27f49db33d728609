// Runs the rollout benchmark (@piflow/core/testing) in real headless Chromium (Debian's /usr/bin/chromium,
// WebGPU on Mesa llvmpipe through ANGLE/OpenGL ES): bundles the page with esbuild, serves it from a local HTTP
// server on 127.0.0.1, and prints what the page reports.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const bundle = await build({
  entryPoints: [path.join(here, 'browser-entry.ts')],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  conditions: ['@piflow/source'],
  write: false,
  logLevel: 'error',
  // Node-only modules reached through @piflow/core/testing are not part of this page.
  external: ['node:*', 'webgpu'],
});
const script = bundle.outputFiles[0]!.text;
const html =
  '<!doctype html><meta charset="utf-8"><title>piflow WebGPU bench</title><script type="module" src="/bench.js"></script>';
const server = createServer((request, response) => {
  const body = request.url === '/bench.js' ? script : html;
  response.writeHead(200, {
    'content-type': request.url === '/bench.js' ? 'text/javascript' : 'text/html',
  });
  response.end(body);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
const userDataDir = mkdtempSync(path.join(tmpdir(), 'piflow-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.PIFLOW_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--enable-unsafe-webgpu',
    '--use-angle=gl-egl',
    '--use-webgpu-adapter=opengles',
    '--ignore-gpu-blocklist',
  ],
});
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  await page.exposeFunction('piflowBench', (line: string) => {
    console.log(line);
    if (line.startsWith('error')) failed = true;
    if (line === 'done' || line.startsWith('error')) finish();
  });
  page.on('console', (message) => {
    // A module that fails to load (a bad import) shows up here, not as a page error.
    if (message.type() === 'error') console.error(`page console: ${message.text()}`);
  });
  page.on('pageerror', (error) => {
    console.error(`page error: ${error.message}`);
    failed = true;
    finish();
  });
  await page.goto(`http://127.0.0.1:${port}/`);
  // Never hold the shared benchmark lock forever: give up after 15 minutes.
  const timer = setTimeout(() => {
    console.error('chromium bench: no result after 15 minutes');
    failed = true;
    finish();
  }, 15 * 60_000);
  await done;
  clearTimeout(timer);
} finally {
  await context.close();
  server.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
if (failed) process.exit(1);
