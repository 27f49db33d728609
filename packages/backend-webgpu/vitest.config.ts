import { fileURLToPath } from 'node:url';
import { createVitestConfig } from '@piflow/vitest-config';
import { playwright } from '@vitest/browser-playwright';

const shim = (name: string) => fileURLToPath(new URL(`./test/browser-shims/${name}.ts`, import.meta.url));

/** Headless Chromium on Mesa llvmpipe through ANGLE/OpenGL ES, the flags ENVIRONMENT.md measured. */
const chromiumArgs = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--use-angle=gl-egl',
  '--use-webgpu-adapter=opengles',
  '--ignore-gpu-blocklist',
];

export default createVitestConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['src/**/*.test.ts'],
          exclude: ['src/**/*.browser.test.ts'],
        },
      },
      {
        // Not `extends: true`: the browser page resolves with browser conditions, not the shared 'node' ones.
        resolve: {
          conditions: ['@piflow/source', 'browser', 'import', 'module', 'default'],
          alias: { 'node:module': shim('node-module'), 'node:path': shim('node-path') },
        },
        // Pre-bundled up front so the page never reloads mid-run for a late dependency discovery.
        optimizeDeps: {
          include: ['@tensorflow/tfjs', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-webgpu'],
        },
        test: {
          name: 'chromium',
          include: ['src/**/*.test.ts'],
          exclude: ['src/**/*.node.test.ts'],
          setupFiles: ['./test/browser-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            api: { host: '127.0.0.1' },
            provider: playwright({
              launchOptions: {
                executablePath: process.env.PIFLOW_CHROMIUM ?? '/usr/bin/chromium',
                args: chromiumArgs,
              },
              persistentContext: true,
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
