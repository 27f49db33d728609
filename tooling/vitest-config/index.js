// Shared vitest configuration: sibling packages resolve to their TypeScript sources through the
// `@piflow/source` export condition, so tests never need a build of their dependencies.
import { defineConfig } from 'vitest/config';

export const sourceConditions = ['@piflow/source', 'node', 'import', 'module', 'default'];

/** @param {import('vitest/config').UserConfig} [overrides] */
export function createVitestConfig(overrides = {}) {
  const { test = {}, ...rest } = overrides;
  return defineConfig({
    resolve: { conditions: sourceConditions },
    ssr: { resolve: { conditions: sourceConditions, externalConditions: sourceConditions } },
    ...rest,
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 60_000,
      pool: 'forks',
      ...test,
    },
  });
}
