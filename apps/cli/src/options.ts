import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Command, InvalidArgumentError as CommanderError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './errors';

/** Plain decimal numbers only ('12', '0.5', '1e-3'): not '0x3', '0b1', '', ' ', 'Infinity'. */
const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function strictNumber(value: string): number {
  return DECIMAL.test(value) ? Number(value) : Number.NaN;
}

export function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string) => {
    const n = strictNumber(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new CommanderError(
        `${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}.`,
      );
    }
    return n;
  };
}

export function number(name: string, min: number, max = Number.POSITIVE_INFINITY, minExclusive = false) {
  return (value: string) => {
    const n = strictNumber(value);
    if (!Number.isFinite(n) || (minExclusive ? n <= min : n < min) || n > max) {
      throw new CommanderError(
        `${name} must be a number in ${minExclusive ? '(' : '['}${min}, ${max}], got ${JSON.stringify(value)}.`,
      );
    }
    return n;
  };
}

/** A training command's checkpoint interval (`--checkpoint-every`), also written on Ctrl-C. */
export function checkpointEveryOption(every: number): Option {
  return new Option('--checkpoint-every <n>', 'write a checkpoint every n iterations (and on Ctrl-C)')
    .argParser(integer('--checkpoint-every', 1))
    .default(every);
}

/** A training command's `--resume`: continue the run in its output folder. */
export function resumeOption(): Option {
  return new Option('--resume', 'continue from the newest checkpoint in <out>/checkpoints').default(false);
}

/** A training command's `--overwrite`: replace the run in its output folder. */
export function overwriteOption(): Option {
  return new Option(
    '--overwrite',
    'replace a previous run in <out> (its outputs, checkpoints and log)',
  ).default(false);
}

/** An EMA decay in [0, 1): 1 would keep the initial weights forever. */
export function emaDecay(value: string): number {
  const n = strictNumber(value);
  if (!(n >= 0 && n < 1)) {
    throw new CommanderError(
      `--ema must be a decay in [0, 1) (1 would export the untrained weights), got ${JSON.stringify(value)}.`,
    );
  }
  return n;
}

/** The FlowMap sampler's stochasticity h: a number ≥ 0 or 'inf'. */
export function stochasticity(value: string): number | 'inf' {
  if (value === 'inf') return 'inf';
  const n = strictNumber(value);
  if (!(n >= 0 && Number.isFinite(n))) {
    throw new CommanderError(`--h must be a number ≥ 0 or 'inf', got ${JSON.stringify(value)}.`);
  }
  return n;
}

/** A σ interval `low,high` with 0 ≤ low ≤ high ≤ 1. */
export function sigmaInterval(name: string) {
  return (value: string): [number, number] => {
    const parts = value.split(',').map((s) => strictNumber(s.trim()));
    if (parts.length !== 2 || parts.some((p) => !(p >= 0 && p <= 1)) || parts[0]! > parts[1]!) {
      throw new CommanderError(
        `${name} must be two σ values low,high with 0 ≤ low ≤ high ≤ 1 (e.g. 0,0.7), got ${JSON.stringify(value)}.`,
      );
    }
    return parts as [number, number];
  };
}

export function labelList(value: string): number[] {
  const labels = value.split(',').map((s) => strictNumber(s.trim()));
  if (labels.some((l) => !Number.isInteger(l) || l < 0)) {
    throw new CommanderError(
      `--labels must be comma-separated class indices like 0,3,7, got ${JSON.stringify(value)}.`,
    );
  }
  return labels;
}

/** What a renamed option's old name fails with, by the hidden option that catches it. */
const renamedOptions = new WeakMap<Option, { message: string; fix?: string }>();

/**
 * A flag that was renamed (or whose meaning moved to another flag): hidden from --help; given on the command
 * line, or as a key of a `--config` file, it fails with `message`, which names the new flag (and `fix`).
 */
export function renamedOption(flags: string, message: string, fix?: string): Option {
  const option = new Option(flags).hideHelp().argParser(() => {
    throw new UsageError(message, fix);
  });
  renamedOptions.set(option, { message, fix });
  return option;
}

/**
 * An output file option's parser: the file must end in one of `extensions` (the formats the command
 * writes), compared case-insensitively.
 */
export function outputFile(name: string, extensions: readonly string[]) {
  return (value: string): string => {
    const extension = path.extname(value).toLowerCase();
    if (!extensions.includes(extension)) {
      throw new CommanderError(
        `${name} writes ${extensions.join(' or ')} files: give a file name ending in ${extensions.join(' or ')}, got ${JSON.stringify(value)}.`,
      );
    }
    return value;
  };
}

/**
 * Options from `--config <file.json|yaml>` fill every option not given on the command line (flags win).
 * Keys are the options' camelCase names (e.g. `batchSize`) or their flag names (`batch-size`).
 */
export function applyConfigFile(command: Command): void {
  const file = command.getOptionValue('config') as string | undefined;
  if (!file) return;
  let config: Record<string, unknown>;
  try {
    const text = readFileSync(file, 'utf8');
    config = (file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) ?? {};
  } catch (error) {
    throw new UsageError(
      `Cannot read the config file ${file}: ${(error as Error).message}`,
      'pass a JSON or YAML file of option names and values.',
    );
  }
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw new UsageError(
      `The config file ${file} must hold an object of options.`,
      'write e.g. `iterations: 2000` per line (YAML).',
    );
  }
  const known = new Map(command.options.map((o) => [o.attributeName(), o]));
  for (const [rawKey, value] of Object.entries(config)) {
    const key = rawKey.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const option = known.get(key);
    const renamed = option && renamedOptions.get(option);
    if (renamed) {
      throw new UsageError(
        `The config file ${file} sets "${rawKey}": ${renamed.message}`,
        `rename the key in ${file}${renamed.fix ? `; ${renamed.fix}` : ''}.`,
      );
    }
    if (!option) {
      throw new UsageError(
        `The config file sets "${rawKey}", which \`${command.name()}\` does not take.`,
        `run \`piflow ${command.name()} --help\` for its options.`,
      );
    }
    const source = command.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') continue;
    // numbers and booleans from the file go through the same checks as the flag's text
    const text = typeof value === 'number' || typeof value === 'boolean' ? String(value) : value;
    const parsed = option.parseArg && typeof text === 'string' ? option.parseArg(text, undefined) : value;
    command.setOptionValueWithSource(key, parsed, 'config');
  }
}

export function integerList(name: string) {
  return (value: string): number[] => {
    const list = value.split(',').map((s) => Number(s.trim()));
    if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1)) {
      throw new CommanderError(
        `${name} must be comma-separated positive integers like 16,32,64, got ${JSON.stringify(value)}.`,
      );
    }
    return list;
  };
}

/** The command line as typed after `piflow` (global options included), for model metadata and reports. */
export function commandLine(): string {
  return ['piflow', ...process.argv.slice(2)].join(' ');
}
