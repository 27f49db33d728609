// End to end in real headless Chromium: builds the app with Vite, serves dist/ from a local HTTP server on
// 127.0.0.1, and drives the page with Playwright (test/demo-harness.ts).
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoRun } from '../src/main';
import type { MnistRun } from '../src/mnist-view';
import {
  appDir,
  baseArgs,
  type DemoHarness,
  startDemo,
  waitForMnistRun,
  waitForRun,
  webgpuArgs,
} from './demo-harness';

// Each run saves test-results/demo.png, mnist.png and fashion.png (git-ignored); PIFLOW_UPDATE_SCREENSHOT=1 refreshes the
// README's committed screenshots/ instead.
const screenshotPath = (name: string) =>
  process.env.PIFLOW_UPDATE_SCREENSHOT
    ? path.join(appDir, 'screenshots', name)
    : path.join(appDir, 'test-results', name);
const COUNT = 1024;

let demo: DemoHarness | undefined;

beforeAll(async () => {
  demo = await startDemo();
}, 120_000);

afterAll(async () => {
  await demo?.close();
});

const openDemo = (args: string[], query = '') => demo!.open(args, query);

/**
 * Reads the digit canvas cell by cell (where the run's layout puts them): every one of the `count` cells holds
 * a non-blank image (its grey levels vary), and the canvas is exactly the grid, nothing else drawn on it.
 */
async function expectDigitCells(page: Page, run: MnistRun): Promise<void> {
  const cells = await page.evaluate((layout) => {
    const canvas = document.getElementById('digits') as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    const stats = [];
    for (let n = 0; n < layout.count; n++) {
      const left = layout.gap + (n % layout.columns) * (layout.cellWidth + layout.gap);
      const top = layout.gap + Math.floor(n / layout.columns) * (layout.cellHeight + layout.gap);
      let sum = 0;
      let squares = 0;
      let grey = true;
      for (let y = top; y < top + layout.cellHeight; y++) {
        for (let x = left; x < left + layout.cellWidth; x++) {
          const k = 4 * (y * canvas.width + x);
          if (data[k] !== data[k + 1] || data[k] !== data[k + 2]) grey = false;
          sum += data[k]!;
          squares += data[k]! * data[k]!;
        }
      }
      const size = layout.cellWidth * layout.cellHeight;
      const mean = sum / size;
      stats.push({ mean, std: Math.sqrt(Math.max(squares / size - mean * mean, 0)), grey });
    }
    // The gap left of the first cell has the grid's background colour (slate-200).
    const corner = Array.from(data.subarray(0, 3));
    return { stats, width: canvas.width, height: canvas.height, corner };
  }, run.layout);
  expect(cells.width).toBe(run.layout.width);
  expect(cells.height).toBe(run.layout.height);
  expect(run.layout.rows).toBe(Math.ceil(run.count / 10));
  expect(cells.corner).toEqual([0xe2, 0xe8, 0xf0]);
  expect(cells.stats).toHaveLength(run.count);
  const nonBlank = cells.stats.filter((c) => c.grey && c.std > 10);
  expect(nonBlank.length, JSON.stringify(cells.stats.slice(0, 3))).toBe(run.count);
}

async function generateAt(page: Page, steps: number, runs: number): Promise<DemoRun> {
  await page.check(`input[name="steps"][value="${steps}"]`);
  await page.selectOption('#count', String(COUNT));
  await page.click('#generate');
  return waitForRun(page, runs);
}

/** Pixels of a canvas with exactly the given colour, and pixels that differ from white and the shading. */
function canvasPixels(page: Page, id: string, rgb: [number, number, number]) {
  return page.evaluate(
    ({ id, rgb }) => {
      const canvas = document.getElementById(id) as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let exact = 0;
      let ink = 0;
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
        if (r === rgb[0] && g === rgb[1] && b === rgb[2]) exact++;
        // Not white (background) and not the pale data-square shading (#eef2f7) nor the axes (#cbd5e1).
        if (r < 190 || g < 190 || b < 190) ink++;
      }
      return { exact, ink, total: data.length / 4 };
    },
    { id, rgb },
  );
}

const SAMPLE_RGB: [number, number, number] = [0x1d, 0x4e, 0xd8];

describe('browser demo (headless Chromium)', () => {
  it('generates on WebGPU at 1 and 4 steps, draws every sample and the trajectories, and saves a screenshot', async () => {
    const { page, errors } = await openDemo([...baseArgs, ...webgpuArgs], '?backend=webgpu');
    // The page generates once on load (4 steps, 1024 samples); then the test clicks at 1 and at 4 steps.
    await waitForRun(page, 1);
    for (const [steps, run] of [
      [1, 2],
      [4, 3],
    ] as const) {
      const report = await generateAt(page, steps, run);
      expect(report).toMatchObject({ backend: 'webgpu', steps, count: COUNT, samplesDrawn: COUNT });
      expect(await page.textContent('#backend')).toBe('webgpu');
      expect(await page.textContent('#samples-drawn')).toBe(String(COUNT));
      expect(await page.isHidden('#note'), 'no fallback note on WebGPU').toBe(true);
      expect(report.milliseconds).toBeGreaterThan(0);
      expect(await page.textContent('#time')).toMatch(/^\d+\.\d ms \(1024 samples, [14] steps?\)$/);
      // Trained models: most samples land in the checkerboard's data squares (the noise itself puts about
      // 45 % there), and the policy's paths end near the teacher's ODE ends from the same noise (π-ID's aim;
      // the data squares are 1 wide).
      expect(report.inSquares).toBeGreaterThan(0.6);
      expect(report.endpointGap).toBeLessThan(0.2);
      expect(report.trajectoriesDrawn).toBe(48);

      const samples = await canvasPixels(page, 'samples', SAMPLE_RGB);
      // 2 × 2-pixel dots: at least one visible pixel per sample on average, overlaps allowed.
      expect(samples.exact).toBeGreaterThanOrEqual(COUNT);
      const paths = await canvasPixels(page, 'trajectories', SAMPLE_RGB);
      expect(paths.ink).toBeGreaterThan(2000);
      expect(paths.exact).toBeGreaterThan(0);
    }
    expect(await page.isHidden('#view-mnist'), 'the MNIST view is hidden').toBe(true);
    const screenshot = screenshotPath('demo.png');
    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);
    expect(errors).toEqual([]);
  }, 150_000);

  it('generates MNIST digits on WebGPU for all and for chosen classes, one non-blank cell per digit', async () => {
    const { page, errors } = await openDemo(
      [...baseArgs, ...webgpuArgs],
      '?view=mnist&count=20&backend=webgpu',
    );
    // The view opened from the URL generates once on load: all ten digits in turn, 4 steps, 20 images.
    const first = await waitForMnistRun(page, 1);
    expect(first).toMatchObject({ backend: 'webgpu', steps: 4, count: 20, digits: [], digitsDrawn: 20 });
    expect(first.labels).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await page.isVisible('#view-mnist')).toBe(true);
    expect(await page.isHidden('#view-2d')).toBe(true);
    expect(await page.getAttribute('#tab-mnist', 'aria-selected')).toBe('true');
    expect(await page.isHidden('#note'), 'no fallback note on WebGPU').toBe(true);
    await expectDigitCells(page, first);

    // Digits 3 and 7 at 1 step, 30 images.
    await page.click('label.digit:has(input[value="3"])');
    await page.click('label.digit:has(input[value="7"])');
    expect(await page.getAttribute('#all-digits', 'aria-pressed')).toBe('false');
    await page.check('input[name="mnist-steps"][value="1"]');
    await page.selectOption('#mnist-count', '30');
    await page.click('#mnist-generate');
    const chosen = await waitForMnistRun(page, 2);
    expect(chosen).toMatchObject({ backend: 'webgpu', steps: 1, count: 30, digits: [3, 7], digitsDrawn: 30 });
    expect(chosen.labels).toEqual(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? 3 : 7)));
    expect(chosen.milliseconds).toBeGreaterThan(0);
    expect(await page.textContent('#mnist-backend')).toBe('webgpu');
    expect(await page.textContent('#digits-drawn')).toBe('30');
    expect(await page.textContent('#mnist-time')).toMatch(/^\d+\.\d ms \(30 images, 1 step\)$/);
    await expectDigitCells(page, chosen);
    const screenshot = screenshotPath('mnist.png');
    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);

    // The 2-D tab shows the 2-D view, which loads its models and generates then.
    await page.click('#tab-2d');
    expect(await page.isHidden('#view-mnist')).toBe(true);
    const twoD = await waitForRun(page, 1);
    expect(twoD).toMatchObject({ backend: 'webgpu', samplesDrawn: COUNT });
    expect(errors).toEqual([]);
  }, 150_000);

  it('measures WebGPU against wasm when no backend is asked for, takes the faster one and says which', async () => {
    const { page, errors } = await openDemo([...baseArgs, ...webgpuArgs], '?view=mnist&count=10');
    const first = await waitForMnistRun(page, 1);
    const choice = await page.evaluate(() => window.piflowDemo!.backend!);
    // Both measured, fastest first; the page runs on the fastest and shows it.
    expect(choice.probe?.map((p) => p.backend).sort()).toEqual(['wasm', 'webgpu']);
    for (const p of choice.probe!) expect(p.milliseconds).toBeGreaterThan(0);
    expect(choice.backend).toBe(choice.probe![0]!.backend);
    expect(first).toMatchObject({ backend: choice.backend, count: 10, digitsDrawn: 10 });
    expect(await page.textContent('#mnist-backend')).toBe(choice.backend);
    // Served cross-origin isolated, the page runs wasm on every core (up to 4); the core count it reads
    // afterwards is the real one again (tfjs's half-the-cores cap is lifted only while the module starts).
    const machine = await page.evaluate(() => ({
      isolated: crossOriginIsolated,
      cores: navigator.hardwareConcurrency,
    }));
    expect(machine.isolated).toBe(true);
    if (choice.backend === 'wasm') {
      expect(choice.threads).toBe(Math.min(4, machine.cores));
      expect(await page.textContent('#backend')).toBe(
        choice.threads! > 1 ? `wasm (${choice.threads} threads)` : 'wasm',
      );
      // WebGPU on this machine is Mesa's llvmpipe, a software rasteriser: the probe puts wasm first.
      expect(await page.textContent('#note')).toMatch(
        /WebGPU works here but is slower than WebAssembly on this machine \(a small probe: wasm \d+ ms, webgpu \d+ ms/,
      );
    } else {
      expect(await page.isHidden('#note')).toBe(true);
    }
    await expectDigitCells(page, first);

    // The data set menu switches to the Fashion-MNIST student, which names its classes on the toggles.
    expect(first.dataset).toBe('mnist');
    await page.selectOption('#mnist-data', 'fashion-mnist');
    const fashion = await waitForMnistRun(page, 2);
    expect(fashion).toMatchObject({
      dataset: 'fashion-mnist',
      backend: choice.backend,
      count: 10,
      digitsDrawn: 10,
    });
    expect(fashion.labels).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await page.textContent('label.digit:has(input[value="9"])')).toBe('Ankle boot');
    expect(await page.textContent('#mnist-model-info')).toMatch(/^Fashion-MNIST GM K=8 student \(U-Net/);
    expect(await page.textContent('#digits-caption')).toMatch(/^Fashion-MNIST, all classes · 4-step/);
    await expectDigitCells(page, fashion);
    const screenshot = screenshotPath('fashion.png');
    mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);
    expect(errors).toEqual([]);
  }, 150_000);

  it('runs wasm on one thread when the page is opened with ?threads=1', async () => {
    const { page, errors } = await openDemo(baseArgs, '?view=mnist&count=10&backend=wasm&threads=1');
    const run = await waitForMnistRun(page, 1);
    expect(run).toMatchObject({ backend: 'wasm', count: 10, digitsDrawn: 10 });
    expect(await page.evaluate(() => window.piflowDemo!.backend!.threads)).toBe(1);
    expect(await page.textContent('#backend')).toBe('wasm');
    await expectDigitCells(page, run);
    expect(errors).toEqual([]);
  }, 90_000);

  it('falls back to WebGL with a visible note when the browser has no WebGPU', async () => {
    // A small first batch (the controls preset from the URL) keeps the software-WebGL run short.
    const { page, errors } = await openDemo(baseArgs, '?steps=2&count=256&seed=5');
    const report = await waitForRun(page, 1);
    expect(report).toMatchObject({ backend: 'webgl', steps: 2, count: 256, seed: 5, samplesDrawn: 256 });
    expect(await page.isVisible('#note')).toBe(true);
    expect(await page.textContent('#note')).toMatch(/WebGPU is not available here .* runs on WebGL instead/);
    expect(await page.textContent('#backend')).toBe('webgl');
    expect(report.inSquares).toBeGreaterThan(0.6);
    expect(report.endpointGap).toBeLessThan(0.2);
    expect(await page.textContent('#samples-drawn')).toBe('256');
    expect((await canvasPixels(page, 'samples', SAMPLE_RGB)).exact).toBeGreaterThanOrEqual(256);
    expect(errors).toEqual([]);
  }, 150_000);
});
