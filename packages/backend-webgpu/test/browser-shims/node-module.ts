// Browser stand-in for `node:module`, imported by @piflow/core/testing's backend setup. Only its wasm branch
// calls createRequire, and the browser tests use the 'webgpu' backend.
export function createRequire(): never {
  throw new Error('node:module is not available in the browser test page');
}
