import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  createPolicyRegistry,
  describeFamilyOption,
  type FamilyOptionSpecs,
  familiesFromModule,
  InvalidArgumentError,
  type PolicyFamily,
  type PolicyRegistry,
  parseFamilyOptionValue,
  resolveFamilyOptions,
} from '@piflow/core';
import type { ModelManifest } from '@piflow/models';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import { UsageError } from './errors';

/** The families every `piflow` command knows without `--plugin`. */
export const builtinFamilies: Readonly<Record<string, PolicyFamily>> = { gm, dx };

/** Export conditions this process resolves with (`--conditions=x` of node/tsx), then Node's defaults. */
function activeConditions(): string[] {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS?.split(/\s+/) ?? [])];
  const named = flags.flatMap((f) => {
    const m = /^(?:--conditions|-C)=(.+)$/.exec(f);
    return m ? [m[1]!] : [];
  });
  return [...named, 'import', 'node', 'default'];
}

/** The file a package's `exports['.']` (or `main`) names for these conditions. */
function packageEntry(dir: string): string {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    exports?: unknown;
    main?: string;
    name?: string;
  };
  const conditions = activeConditions();
  const pick = (target: unknown): string | undefined => {
    if (typeof target === 'string') return target;
    if (!target || typeof target !== 'object') return undefined;
    const record = target as Record<string, unknown>;
    if ('.' in record) return pick(record['.']);
    for (const condition of conditions) {
      if (condition in record) {
        const found = pick(record[condition]);
        if (found) return found;
      }
    }
    return undefined;
  };
  const entry = pick(manifest.exports) ?? manifest.main ?? 'index.js';
  return path.resolve(dir, entry);
}

/** The installed package folder of `name`, looking in node_modules from `cwd` upwards. */
function findInstalledPackage(name: string, cwd: string): string | undefined {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * Loads a policy plugin: a package name (installed in this folder or beside the `piflow` command), a
 * package folder, or a module file. Returns the families it exports.
 */
export async function loadPlugin(specifier: string, cwd = process.cwd()): Promise<PolicyFamily[]> {
  // A path (./x, /x, or an existing folder or file such as examples/policy-plugin) or else a package name.
  const local =
    /^[./]/.test(specifier) || path.isAbsolute(specifier) || existsSync(path.resolve(cwd, specifier))
      ? path.resolve(cwd, specifier)
      : undefined;
  let module: Record<string, unknown>;
  try {
    if (local) {
      if (!existsSync(local))
        throw new UsageError(
          `--plugin ${specifier}: no such file or folder.`,
          'give a package name, a package folder or a module file.',
        );
      const file = statSync(local).isDirectory() ? packageEntry(local) : local;
      module = await import(pathToFileURL(file).href);
    } else {
      const installed = findInstalledPackage(specifier, cwd);
      module = installed
        ? await import(pathToFileURL(packageEntry(installed)).href)
        : await import(specifier);
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as { code?: string }).code;
    if (!local && (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND')) {
      throw new UsageError(
        `Cannot find the policy plugin package "${specifier}".`,
        `install it (npm i ${specifier}) in this folder or beside piflow, or pass its folder: --plugin ./path/to/it.`,
      );
    }
    throw new UsageError(
      `Cannot load the policy plugin ${specifier}: ${(error as Error).message}`,
      'check that it is built and exports a policy family.',
    );
  }
  try {
    return familiesFromModule(module, `--plugin ${specifier}`);
  } catch (error) {
    throw new UsageError((error as Error).message, 'export the family value from the package entry.');
  }
}

/** The built-in families plus those of every `--plugin`; a plugin family named like another one is refused. */
export async function familyRegistry(plugins: readonly string[] = []): Promise<PolicyRegistry> {
  let registry = createPolicyRegistry(builtinFamilies as Record<string, PolicyFamily>);
  for (const specifier of plugins) {
    for (const family of await loadPlugin(specifier)) {
      if (registry.has(family.name)) {
        if (registry.get(family.name) === family) continue;
        throw new UsageError(
          `--plugin ${specifier} provides a family "${family.name}", which is already registered.`,
          'family names must be unique; rename the plugin family.',
        );
      }
      try {
        registry = registry.with({ [family.name]: family });
      } catch (error) {
        throw new UsageError(
          `--plugin ${specifier}: ${(error as Error).message}`,
          'rebuild the plugin against this version of @piflow/core.',
        );
      }
    }
  }
  return registry;
}

/**
 * The registry to load a model file with: when the file names a family the registry lacks but also the npm
 * package that provides it, that package is loaded as a plugin (so `piflow sample` of a plugin student works
 * without `--plugin` where the package is installed).
 */
export async function registryForModel(
  registry: PolicyRegistry,
  manifest: ModelManifest,
): Promise<PolicyRegistry> {
  const named = manifest.family;
  if (manifest.kind !== 'student' || !named || registry.has(named.name) || !named.package) return registry;
  let families: PolicyFamily[];
  try {
    families = await loadPlugin(named.package);
  } catch {
    throw new UsageError(
      `This model is a student of the policy family "${named.name}" from the npm package "${named.package}", which is not installed here.`,
      `install it (npm i ${named.package}) or pass --plugin <its package or folder>.`,
    );
  }
  const family = families.find((f) => f.name === named.name);
  if (!family) {
    throw new UsageError(
      `The package ${named.package} exports no family named "${named.name}".`,
      `pass --plugin with the package that provides "${named.name}".`,
    );
  }
  return registry.with({ [family.name]: family });
}

/** `--family` resolved against the registry, with every registered name in the error. */
export function chooseFamily(registry: PolicyRegistry, name: string): PolicyFamily {
  if (!registry.has(name)) {
    throw new UsageError(
      `Unknown policy family "${name}". Registered: ${registry.names().join(', ')}.`,
      'choose one of them, or load the package that provides it with --plugin <package or path>.',
    );
  }
  return registry.get(name);
}

/** Collects repeatable `--x name=value` flags into a list (commander's argParser for them). */
export function collectPairs(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Parses `name=value` pairs (from repeatable flags or a config file) into a family's declared options; values
 * are parsed strictly by their declared type and range-checked later by the family's declarations.
 */
export function parseOptionPairs(
  flag: string,
  pairs: readonly string[] | Record<string, unknown> | undefined,
  specs: FamilyOptionSpecs | undefined,
  family: string,
): Record<string, number | string> {
  const declared = specs ?? {};
  const list: [string, unknown][] = Array.isArray(pairs)
    ? pairs.map((pair) => {
        const i = pair.indexOf('=');
        if (i <= 0)
          throw new UsageError(
            `${flag} takes name=value, got ${JSON.stringify(pair)}.`,
            `e.g. ${flag} ${Object.keys(declared)[0] ?? 'name'}=…`,
          );
        return [pair.slice(0, i), pair.slice(i + 1)];
      })
    : Object.entries(pairs ?? {});
  const out: Record<string, number | string> = {};
  for (const [name, raw] of list) {
    const spec = declared[name];
    if (!spec) {
      const known = Object.entries(declared).map(([n, s]) => `  ${describeFamilyOption(n, s)}`);
      throw new UsageError(
        `${flag} ${name}: the family "${family}" declares no such option.`,
        known.length ? `its options:\n${known.join('\n')}` : `the family "${family}" declares none here.`,
      );
    }
    try {
      out[name] =
        typeof raw === 'string' ? parseFamilyOptionValue(`${flag} ${name}`, spec, raw) : (raw as number);
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      throw new UsageError((error as Error).message, describeFamilyOption(name, spec));
    }
  }
  try {
    resolveFamilyOptions(flag, declared, out); // ranges and choices, by the family's declarations
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    const name = Object.keys(out).find((n) => (error as Error).message.includes(`${flag}.${n}`));
    throw new UsageError(
      (error as Error).message.replace(`${flag}.`, `${flag} `),
      name ? describeFamilyOption(name, declared[name]!) : 'see --help for the options of the family.',
    );
  }
  return out;
}

/** Help text: every registered family with its head, training and sampling options. */
export function describeFamilies(registry: PolicyRegistry): string {
  const lines: string[] = [];
  for (const name of registry.names()) {
    const family = registry.get(name);
    lines.push(
      `  ${name}${family.packageName ? ` (${family.packageName})` : ''}${family.description ? `: ${family.description}` : ''}`,
    );
    for (const [label, specs] of [
      ['--head', family.studentHead?.options],
      ['--train-option', family.training?.options],
      ['--sample-option', family.sampling?.options],
    ] as const) {
      for (const [option, spec] of Object.entries(specs ?? {}))
        lines.push(`      ${label} ${describeFamilyOption(option, spec)}`);
    }
  }
  return lines.join('\n');
}
