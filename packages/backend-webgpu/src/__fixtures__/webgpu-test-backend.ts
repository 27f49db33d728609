// Makes 'webgpu' available to @piflow/core/testing's useBackend(): Dawn in Node, navigator.gpu in Chromium.
import { registerTestBackend } from '@piflow/core/testing';
import { setupWebGPU } from '../setup-webgpu';

registerTestBackend('webgpu', async () => {
  await setupWebGPU({ setBackend: false });
});

export const WEBGPU = ['webgpu'];
