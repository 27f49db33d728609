import { lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createInstalledProject, type InstalledProject, skipPackInstall, tfjsVersion } from '../src/project';
import { publishablePackages, workspaceRoot } from '../src/workspace';

/**
 * The packages as users get them: every publishable package is packed with `pnpm pack`, the tarballs are
 * installed with `npm install` into a fresh project under the OS temp dir (outside the workspace, so no
 * workspace links and no hoisted devDependencies), together with @tensorflow/tfjs-core from the npm registry
 * (the tfjs backends come as @piflow/backend-node's peers), and a plain Node script samples there with a GM
 * policy. Needs the npm registry (CI has it); set PIFLOW_SKIP_PACK_INSTALL=1 to skip it offline.
 * (test/docs-run.test.ts runs the documentation's snippets and imports every subpath export the same way.)
 */
let project: InstalledProject | undefined;
afterAll(() => project?.remove());

const script = `
import { resolveBackend } from '@piflow/backend-node';
import { createAnalyticGMFlow, createPolicyRegistry, createRandom, rollout, sample } from '@piflow/core';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { gaussian } from 'piflow-policy-gaussian';

const backend = await resolveBackend({ prefer: ['wasm', 'cpu'] });
const flow = createAnalyticGMFlow({ means: [[-2, 0], [2, 0], [0, 2]], std: 0.2 });
const policies = createPolicyRegistry({ gm, dx, gaussian });
const noise = createRandom(0).normalTensor([256, 2]);
// The teacher's own ODE with 128 Euler substeps, and 1-step π-Flow sampling with the GM policy of the exact
// posterior (the oracle student): they agree to float rounding.
const reference = rollout(flow, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 128 });
const student = { family: 'gm', predict: (x, sigma) => flow.posterior(x, sigma) };
const x = sample(student, policies.get('gm'), noise, { numInferenceSteps: 1 });
const a = x.dataSync();
const b = reference.dataSync();
let maxDifference = 0;
for (let i = 0; i < a.length; i++) maxDifference = Math.max(maxDifference, Math.abs(a[i] - b[i]));
const spread = Math.sqrt(b.reduce((acc, v) => acc + v * v, 0) / b.length);
tf.dispose([noise, reference, x]);
// Every package's main entry loads as installed.
const entries = process.argv.slice(2);
const loaded = [];
for (const name of entries) {
  try {
    loaded.push(Object.keys(await import(name)).length > 0 ? name : name + ': exports nothing');
  } catch (error) {
    loaded.push(name + ': ' + String(error.message).split('\\n')[0]);
  }
}
console.log(JSON.stringify({ backend: backend.name, families: policies.names(), maxDifference, spread, loaded,
  leftTensors: tf.memory().numTensors }));
`;

describe.skipIf(skipPackInstall)('pack and install outside the workspace', () => {
  it('installs every tarball with npm and samples with a GM policy from a plain Node script', async () => {
    const packages = publishablePackages();
    project = await createInstalledProject({
      prefix: 'pack-install',
      packages,
      dependencies: { '@tensorflow/tfjs-core': tfjsVersion },
      files: { 'sample.mjs': script },
    });
    expect(project.dir.startsWith(workspaceRoot)).toBe(false);
    // Installed from the tarballs, not linked: real folders whose package.json has the packed (rewritten) ranges.
    for (const { pkg } of project.packed) {
      const installed = path.join(project.dir, 'node_modules', pkg.name);
      expect(lstatSync(installed).isSymbolicLink(), `${pkg.name} is a symlink`).toBe(false);
      expect(readFileSync(path.join(installed, 'package.json'), 'utf8')).not.toContain('workspace:');
    }
    // The tfjs backends are @piflow/backend-node's peer dependencies: npm installs them beside tfjs-core.
    for (const backend of ['@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-wasm']) {
      expect(lstatSync(path.join(project.dir, 'node_modules', backend)).isDirectory(), backend).toBe(true);
    }

    const { stdout } = await project.run('node', ['sample.mjs', ...packages.map((p) => p.name)], {
      timeout: 120_000,
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      backend: string;
      families: string[];
      maxDifference: number;
      spread: number;
      loaded: string[];
      leftTensors: number;
    };
    expect(result.backend).toBe('wasm');
    expect(result.families).toEqual(['gm', 'dx', 'gaussian']);
    expect(result.spread).toBeGreaterThan(1); // samples spread over the modes at distance 2
    expect(result.maxDifference).toBeLessThan(1e-4);
    expect(result.loaded, result.loaded.join('\n')).toEqual(packages.map((p) => p.name));
    expect(result.leftTensors).toBe(0);
  });
});
