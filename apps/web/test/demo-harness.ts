// Shared by the end-to-end test and the browser benchmark: builds the app with Vite, serves dist/ from a local
// HTTP server on 127.0.0.1, and opens Debian's Chromium headless through Playwright (WebGPU on Mesa llvmpipe
// through ANGLE/OpenGL ES, the fast configuration of the repository's ENVIRONMENT notes). The server sends the
// cross-origin isolation headers the demo's Vite servers send, so the wasm backend can run threads.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import type { DemoRun } from '../src/main';
import type { MnistRun } from '../src/mnist-view';
import { isolationHeaders } from '../vite.config';

export const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const chromiumPath = process.env.PIFLOW_CHROMIUM ?? '/usr/bin/chromium';

export const baseArgs = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-angle=gl-egl',
  '--ignore-gpu-blocklist',
];
export const webgpuArgs = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=opengles'];

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
};

export interface DemoHarness {
  /** Opens a fresh headless Chromium on the demo page with `query` (e.g. '?view=mnist'). */
  open(args: string[], query?: string): Promise<{ page: Page; errors: string[] }>;
  /** Closes every browser, the server and the build folder. */
  close(): Promise<void>;
}

/** Builds the app, serves it on loopback and returns a way to open it in Chromium. */
export async function startDemo(): Promise<DemoHarness> {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium is not installed at ${chromiumPath}: run scripts/ensure-system-deps.sh from the repository root ` +
        "(it installs Debian's chromium and Mesa drivers), or set PIFLOW_CHROMIUM to a Chromium binary.",
    );
  }
  const outDir = mkdtempSync(path.join(tmpdir(), 'piflow-web-dist-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(outDir, { recursive: true, force: true })];
  await build({ root: appDir, logLevel: 'error', build: { outDir, emptyOutDir: true } });
  const server: Server = createServer((request, response) => {
    const urlPath = decodeURIComponent((request.url ?? '/').split('?')[0]!);
    const file = path.join(outDir, urlPath === '/' ? 'index.html' : urlPath);
    if (!file.startsWith(outDir) || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      ...isolationHeaders,
    });
    response.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    async open(args, query = '') {
      const userDataDir = mkdtempSync(path.join(tmpdir(), 'piflow-web-chromium-'));
      const context: BrowserContext = await chromium.launchPersistentContext(userDataDir, {
        executablePath: chromiumPath,
        headless: true,
        args,
        viewport: { width: 1100, height: 900 },
      });
      cleanups.push(async () => {
        await context.close();
        rmSync(userDataDir, { recursive: true, force: true });
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${origin}/${query}`);
      return { page, errors };
    },
    async close() {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}

/**
 * Waits for the page to finish run number `n` of the 2-D view (`runs`) or the MNIST view (`mnistRuns`) and
 * returns that run's report; throws with the page's message when the page reported an error instead.
 */
async function waitForReport(page: Page, list: 'runs' | 'mnistRuns', n: number, timeout: number) {
  await page.waitForFunction(
    ({ list, n }) => Number(document.body.dataset[list]) >= n || document.body.dataset.state === 'error',
    { list, n },
    { timeout },
  );
  const error = await page.evaluate(() => window.piflowDemo?.error);
  if (error !== undefined) throw new Error(`the page reported an error: ${error}`);
  return page.evaluate(({ list, n }) => window.piflowDemo![list][n - 1]!, { list, n });
}

export const waitForRun = (page: Page, n: number, timeout = 90_000) =>
  waitForReport(page, 'runs', n, timeout) as Promise<DemoRun>;

export const waitForMnistRun = (page: Page, n: number, timeout = 90_000) =>
  waitForReport(page, 'mnistRuns', n, timeout) as Promise<MnistRun>;
