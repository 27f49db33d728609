/**
 * Few-step quality through the CLI's defaults on exact Gaussian mixtures the project was not tuned on: writes a
 * random mixture as an `analytic-gm:` teacher, runs `piflow distill` (defaults; only --family/--nfe/--seed set)
 * and `piflow sample` as processes, and measures coverage TV, spread inside modes and the mean log-density
 * gap to the exact data on 20 000 samples, at the trained step count and elastically at 2× the steps.
 *
 *   pnpm --filter @piflow/cli bench:mixtures [-- --mixture-seed 11 --dimension 6 --components 10 --std 0.3 \
 *     --runs gm:4,gm:2,gm:1,dx:4,x0:4 --samples 20000 --out /tmp/piflow-mixtures]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRandom } from '@piflow/core';
import { randomGaussianMixture } from '@piflow/datasets';
import { gaussianMixtureMeasures } from '@piflow/eval';
import '@tensorflow/tfjs-backend-cpu';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const mixtureSeed = Number(option('mixture-seed', '11'));
const dimension = Number(option('dimension', '6'));
const numComponents = Number(option('components', '10'));
const std = Number(option('std', '0.3'));
const spread = Number(option('spread', '3'));
const count = Number(option('samples', '20000'));
const runs = option('runs', 'gm:4,gm:2,gm:1,dx:4,x0:4').split(',');
const extra = option('distill-args', '').split(' ').filter(Boolean);
const out = path.resolve(option('out', '/tmp/piflow-mixtures'));
mkdirSync(out, { recursive: true });

const here = path.dirname(fileURLToPath(import.meta.url));
const main = path.resolve(here, '../src/main.ts');
const piflow = (...a: string[]) =>
  execFileSync(process.execPath, ['--conditions=@piflow/source', '--import', 'tsx', main, ...a], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });

const flow = randomGaussianMixture({
  dimension,
  numComponents,
  std,
  spread,
  random: createRandom(mixtureSeed),
});
const spec = path.join(out, `mixture-${mixtureSeed}.json`);
writeFileSync(spec, JSON.stringify({ means: flow.means, std: flow.std, weights: flow.weights }));
const data = flow.sample(count, createRandom(8)).x0;
const dataMeasures = gaussianMixtureMeasures(flow, data.dataSync());
data.dispose();

const rows: string[] = [
  `mixture: ${dimension}-D, ${numComponents} components, std ${std}, spread ${spread}, seed ${mixtureSeed}`,
  '| student | trained NFE | sampled NFE | TV | spread | Δlog-density | train s |',
  '|---|---|---|---|---|---|---|',
];
for (const run of runs) {
  // 'x0' is the single-x0 shortcut: the DX family with one point
  const [name, nfeText] = run.split(':') as [string, string];
  const family = name === 'x0' ? 'dx' : name;
  const familyArgs = name === 'x0' ? ['--points', '1'] : [];
  const nfe = Number(nfeText);
  const dir = path.join(out, `${name}-${nfe}-m${mixtureSeed}`);
  const started = performance.now();
  piflow(
    '--backend',
    'wasm',
    'distill',
    '--teacher',
    `analytic-gm:${spec}`,
    '--family',
    family,
    '--nfe',
    String(nfe),
    '--out',
    dir,
    '--overwrite',
    ...familyArgs,
    ...extra,
  );
  const trainSeconds = (performance.now() - started) / 1000;
  for (const sampled of [nfe, 2 * nfe]) {
    const json = path.join(dir, `samples-${sampled}.json`);
    piflow(
      '--backend',
      'wasm',
      'sample',
      '--model',
      path.join(dir, 'model'),
      '--nfe',
      String(sampled),
      '-n',
      String(count),
      '--seed',
      '7',
      '--json',
      json,
      '--out',
      path.join(dir, `samples-${sampled}.png`),
    );
    const { values } = JSON.parse(readFileSync(json, 'utf8')) as { values: number[] };
    const m = gaussianMixtureMeasures(flow, values);
    rows.push(
      `| ${name}-${nfe} | ${nfe} | ${sampled} | ${m.coverageTV.toFixed(4)} | ${m.spread.toFixed(3)} | ${(m.logDensity - dataMeasures.logDensity).toFixed(3)} | ${sampled === nfe ? trainSeconds.toFixed(0) : ''} |`,
    );
    console.log(rows[rows.length - 1]);
  }
}
console.log(rows.join('\n'));
