// The browser demo's MNIST view in headless Chromium on this machine: 30 digits at 4 steps on each backend,
// wasm on one thread and on every core, and the backend the page picks by itself, measured in one run. `pnpm --filter @piflow/web bench`.
import { baseArgs, startDemo, waitForMnistRun, webgpuArgs } from '../test/demo-harness';

const COUNT = 30;
const REPEATS = 3;

/** Opens the MNIST view, lets it generate once on load, then times `REPEATS` more runs (median). */
async function measure(query: string) {
  const { page } = await demo.open([...baseArgs, ...webgpuArgs], `?view=mnist&count=${COUNT}${query}`);
  const first = await waitForMnistRun(page, 1, 300_000);
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    await page.click('#mnist-generate');
    times.push((await waitForMnistRun(page, i + 2, 300_000)).milliseconds);
  }
  times.sort((a, b) => a - b);
  const note = (await page.textContent('#note'))?.trim() ?? '';
  const threads = await page.evaluate(() => window.piflowDemo?.backend?.threads);
  const adapter = await page.evaluate(async () => {
    const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
    const a = await gpu?.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
    if (!a) return 'none';
    const info = a.info;
    const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / ');
    return text || '(the browser reports no adapter details)';
  });
  return {
    backend: threads !== undefined && threads > 1 ? `${first.backend} (${threads} threads)` : first.backend,
    steps: first.steps,
    median: times[Math.floor(REPEATS / 2)]!,
    note,
    adapter,
  };
}

const demo = await startDemo();
try {
  const rows = [];
  for (const [label, query] of [
    ['?backend=webgpu', '&backend=webgpu'],
    ['?backend=wasm&threads=1', '&backend=wasm&threads=1'],
    ['?backend=wasm (every core)', '&backend=wasm'],
    ['no parameter (the page chooses)', ''],
  ] as const) {
    rows.push({ label, ...(await measure(query)) });
  }
  console.log(`WebGPU adapter: ${rows[0]!.adapter}`);
  console.log(`| page opened with | backend used | ${COUNT} digits at 4 steps, median of ${REPEATS} (ms) |`);
  console.log('|---|---|---|');
  for (const r of rows) console.log(`| ${r.label} | ${r.backend} | ${r.median.toFixed(0)} |`);
  const webgpu = rows[0]!.median;
  const chosen = rows[3]!;
  const oneThread = rows[1]!.median;
  console.log(`wasm on every core vs one thread: ${(oneThread / rows[2]!.median).toFixed(2)}× faster`);
  console.log(
    `\nthe page's own choice (${chosen.backend}) vs WebGPU: ${(webgpu / chosen.median).toFixed(2)}× faster`,
  );
  console.log(`note shown: ${chosen.note || '(none)'}`);
} finally {
  await demo.close();
}
