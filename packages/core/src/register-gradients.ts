import * as tf from '@tensorflow/tfjs-core';
import { PiflowError } from './errors';

let pending: Promise<void> | undefined;

/**
 * Makes sure tfjs's gradient functions are registered (the tfjs-core entry registers none). Tries, in
 * order: gradients already registered (e.g. by `@tensorflow/tfjs` or `@tensorflow/tfjs-node`), tfjs-core's
 * `dist/register_all_gradients` module (works under bundlers, Vite, vitest and tsx, not in plain Node ESM),
 * then the `@tensorflow/tfjs` umbrella package (plain Node). Throws with the install command when none works.
 */
export function registerGradients(): Promise<void> {
  if (tf.getGradient('Sum')) return Promise.resolve();
  pending ??= (async () => {
    const attempts: string[] = [];
    for (const specifier of ['@tensorflow/tfjs-core/dist/register_all_gradients', '@tensorflow/tfjs']) {
      try {
        await import(/* @vite-ignore */ specifier);
      } catch (error) {
        attempts.push(`${specifier}: ${(error as Error).message.split('\n')[0]}`);
      }
      if (tf.getGradient('Sum')) return;
    }
    pending = undefined;
    throw new PiflowError(
      `Training needs tfjs's gradient functions, which @tensorflow/tfjs-core does not register by itself. Install the umbrella package (npm i @tensorflow/tfjs@4.22.0) or import '@tensorflow/tfjs-core/dist/register_all_gradients' in a bundled app. Tried: ${attempts.join('; ')}`,
    );
  })();
  return pending;
}
