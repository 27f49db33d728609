import * as tf from '@tensorflow/tfjs-core';
import { PiflowError } from './errors';

let pending: Promise<void> | undefined;

/** The package whose entry registers tfjs's gradient functions (its public API; no file inside tfjs-core). */
const GRADIENTS_PACKAGE = '@tensorflow/tfjs';

/**
 * Makes sure tfjs's gradient functions are registered: training (`tf.grad`, optimizers) needs them, and the
 * `@tensorflow/tfjs-core` entry registers none. Returns at once when they are registered already (by an
 * `import '@tensorflow/tfjs'`, `@tensorflow/tfjs-node`, or an earlier call); otherwise it imports the
 * `@tensorflow/tfjs` umbrella package, which registers them. Install it beside tfjs-core, same version:
 * `npm i @tensorflow/tfjs@<your tfjs-core version>` (an optional peer dependency of the piflow packages that
 * train). In a bundled browser app, `import '@tensorflow/tfjs'` yourself before training: bundlers do not
 * follow this function's computed import. Throws a `PiflowError` with the install command when it cannot.
 */
export function registerGradients(): Promise<void> {
  if (tf.getGradient('Sum')) return Promise.resolve();
  pending ??= (async () => {
    let failure = 'it registered no gradients';
    try {
      // A computed specifier: bundlers and type checkers must not require the optional package.
      await import(/* @vite-ignore */ GRADIENTS_PACKAGE);
    } catch (error) {
      failure = (error as Error).message.split('\n')[0]!;
    }
    if (tf.getGradient('Sum')) return;
    pending = undefined;
    throw new PiflowError(
      `Training needs tfjs's gradient functions, which @tensorflow/tfjs-core does not register by itself. ` +
        `Install the @tensorflow/tfjs package beside it, same version (npm i @tensorflow/tfjs@${tf.version_core}), ` +
        `or import '@tensorflow/tfjs' (or '@tensorflow/tfjs-node') before training. ` +
        `Importing ${GRADIENTS_PACKAGE} failed: ${failure}`,
    );
  })();
  return pending;
}
