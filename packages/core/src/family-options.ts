import { InvalidArgumentError } from './errors';
import type { FamilyOptionSpec, FamilyOptionSpecs, FamilyOptionValues } from './policy-family';
import { assertNumber, assertOneOf, describeValue } from './validation';

/** A declared option in words, for help and error texts: `numComponents (integer ≥ 1, default 8)`. */
export function describeFamilyOption(name: string, spec: FamilyOptionSpec): string {
  const range: string[] = [];
  if (spec.choices) range.push(spec.choices.map((c) => `'${c}'`).join(' | '));
  if (spec.min !== undefined) range.push(`${spec.minExclusive ? '>' : '≥'} ${spec.min}`);
  if (spec.max !== undefined) range.push(`${spec.maxExclusive ? '<' : '≤'} ${spec.max}`);
  const type = spec.type === 'number-or-auto' ? "number or 'auto'" : spec.type;
  const parts = [`${type}${range.length ? ` ${range.join(', ')}` : ''}`];
  if (spec.default !== undefined) parts.push(`default ${spec.default}`);
  return `${name} (${parts.join(', ')}): ${spec.description}`;
}

/**
 * Parses a value given as text (a CLI flag `name=value` or a config-file string) by its declaration:
 * numbers must be plain decimal numbers (no '0x3', '', 'Infinity').
 */
export function parseFamilyOptionValue(
  argument: string,
  spec: FamilyOptionSpec,
  text: string,
): number | string {
  if (spec.type === 'string') return text;
  if (spec.type === 'number-or-auto' && text === 'auto') return 'auto';
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim())) {
    throw new InvalidArgumentError(
      argument,
      `a number${spec.type === 'number-or-auto' ? " or 'auto'" : ''}`,
      JSON.stringify(text),
    );
  }
  return Number(text);
}

function checkValue(argument: string, spec: FamilyOptionSpec, value: unknown): number | string {
  if (spec.type === 'string') {
    if (spec.choices) assertOneOf(argument, value, spec.choices);
    else if (typeof value !== 'string')
      throw new InvalidArgumentError(argument, 'a string', describeValue(value));
    return value as string;
  }
  if (spec.type === 'number-or-auto' && value === 'auto') return 'auto';
  assertNumber(argument, value, {
    ...(spec.type === 'integer' ? { integer: true } : {}),
    ...(spec.min !== undefined ? { min: spec.min } : {}),
    ...(spec.max !== undefined ? { max: spec.max } : {}),
    ...(spec.minExclusive ? { minExclusive: true } : {}),
    ...(spec.maxExclusive ? { maxExclusive: true } : {}),
  });
  return value as number;
}

/**
 * Fills defaults and validates option values against a family's declarations. Unknown names throw with the
 * list of declared options; errors name `<argument>.<option>`.
 */
export function resolveFamilyOptions(
  argument: string,
  specs: FamilyOptionSpecs | undefined,
  values: Readonly<Record<string, unknown>> = {},
): FamilyOptionValues {
  const declared = specs ?? {};
  if (typeof values !== 'object' || values === null) {
    throw new InvalidArgumentError(argument, 'an object of option values', describeValue(values));
  }
  for (const name of Object.keys(values)) {
    if (!(name in declared)) {
      const known = Object.keys(declared);
      throw new InvalidArgumentError(
        `${argument}.${name}`,
        known.length
          ? `one of the declared options: ${known.join(', ')}`
          : 'no options (this family declares none here)',
        describeValue(values[name]),
      );
    }
  }
  const out: Record<string, number | string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const value = values[name] ?? spec.default;
    if (value === undefined) continue;
    out[name] = checkValue(`${argument}.${name}`, spec, value);
  }
  return out;
}
