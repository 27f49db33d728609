/** Loads a package by its specifier, as `import(specifier)` does. Injected in tests and custom setups. */
export type ModuleLoader = (specifier: string) => Promise<unknown>;

/** The default loader: a plain dynamic `import()`, resolved from this package's location. */
export const importModule: ModuleLoader = (specifier) => import(/* @vite-ignore */ specifier);

/** A readable reason for a failed `import()`: "not installed" when the package cannot be found. */
export function describeLoadError(specifier: string, error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n')[0] ?? message;
  if (
    code === 'ERR_MODULE_NOT_FOUND' ||
    code === 'MODULE_NOT_FOUND' ||
    (/Cannot find (package|module)/.test(message) && message.includes(specifier))
  ) {
    return `not installed (${specifier} cannot be found)`;
  }
  return `${specifier} failed to load: ${firstLine}`;
}
