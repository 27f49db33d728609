import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { registerGradients } from '../register-gradients';

/**
 * Backends the test suites run on: `PIFLOW_TEST_BACKENDS` (comma-separated) or cpu and wasm.
 */
export function testBackends(): string[] {
  const fromEnv = globalThis.process?.env?.PIFLOW_TEST_BACKENDS;
  return fromEnv
    ? fromEnv
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : ['cpu', 'wasm'];
}

const setups = new Map<string, () => Promise<void>>();

/** Lets a backend package make its backend available to the conformance suites (e.g. 'webgpu'). */
export function registerTestBackend(name: string, setup: () => Promise<void>): void {
  setups.set(name, setup);
}

const ready = new Map<string, Promise<void>>();

async function setupBuiltin(name: string): Promise<void> {
  if (name === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
    return;
  }
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@tensorflow/tfjs-backend-wasm');
    // The package's main entry lives in dist/ (or dist/cjs or similar): find the .wasm files beside it.
    let dir = path.dirname(entry);
    while (!dir.endsWith(`${path.sep}dist`) && dir !== path.dirname(dir)) dir = path.dirname(dir);
    wasm.setWasmPaths(`${dir}${path.sep}`);
    return;
  }
  throw new Error(`No test setup for backend "${name}": call registerTestBackend("${name}", setup) first.`);
}

/**
 * Makes `name` the active tfjs backend (setting it up once) and registers tfjs's gradient functions, which the
 * suites need (they differentiate policies): see `registerGradients` (`@tensorflow/tfjs` must be installed).
 */
export async function useBackend(name: string): Promise<void> {
  await registerGradients();
  let p = ready.get(name);
  if (!p) {
    p = (setups.get(name) ?? (() => setupBuiltin(name)))();
    ready.set(name, p);
  }
  await p;
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`Backend "${name}" could not be initialised.`);
  await tf.ready();
}
