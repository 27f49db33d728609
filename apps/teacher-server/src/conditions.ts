import { describeValue, InvalidArgumentError, type TeacherMetadata } from '@piflow/core';

/** What one conditioning input must look like (advertised in GET /v1/metadata as `conditions`). */
export interface ConditionSpec {
  /** 'int32' or 'float32' (default: either; int32 when `classes` is given). */
  dtype?: 'int32' | 'float32';
  /** Shape of one row, without the batch axis (default: any; [] when `classes` is given). */
  rowShape?: readonly number[];
  /** Class indices: integers in [0, classes), by default one per sample (int32 [B]). */
  classes?: number;
}

/**
 * Teacher metadata that declares its conditioning inputs (an extension the server reads; e.g.
 * `{ ...metadata, conditions: { labels: { classes: 10 } } }` for a 10-class teacher).
 */
export type TeacherMetadataWithConditions = TeacherMetadata & {
  conditions?: Readonly<Record<string, ConditionSpec>>;
};

function checkSpec(argument: string, spec: unknown): ConditionSpec {
  if (spec === null || typeof spec !== 'object') {
    throw new InvalidArgumentError(
      argument,
      'an object { dtype?, rowShape?, classes? }',
      describeValue(spec),
    );
  }
  const { dtype, rowShape, classes } = spec as Record<string, unknown>;
  if (dtype !== undefined && dtype !== 'int32' && dtype !== 'float32') {
    throw new InvalidArgumentError(`${argument}.dtype`, '"int32" or "float32"', describeValue(dtype));
  }
  if (
    rowShape !== undefined &&
    (!Array.isArray(rowShape) ||
      rowShape.length > 7 ||
      rowShape.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > 2 ** 31))
  ) {
    throw new InvalidArgumentError(
      `${argument}.rowShape`,
      'an array of up to 7 positive integers',
      describeValue(rowShape),
    );
  }
  if (
    classes !== undefined &&
    (typeof classes !== 'number' || !Number.isInteger(classes) || classes < 1 || classes > 2 ** 31 - 1)
  ) {
    throw new InvalidArgumentError(`${argument}.classes`, 'a positive integer', describeValue(classes));
  }
  if (classes !== undefined && dtype === 'float32') {
    throw new InvalidArgumentError(`${argument}.dtype`, '"int32" for class indices', '"float32"');
  }
  return {
    ...(dtype !== undefined ? { dtype } : {}),
    ...(rowShape !== undefined ? { rowShape: [...(rowShape as number[])] } : {}),
    ...(classes !== undefined ? { classes } : {}),
  };
}

/**
 * The spec of every conditioning input that has one: the teacher's `metadata.conditions`, refined field by
 * field by `overrides` (the server's `conditions` option). A class count implies int32 and, unless a row
 * shape is given, one index per sample. Inputs without a spec are only checked for their batch size and
 * finite values.
 */
export function resolveConditionSpecs(
  metadata: TeacherMetadataWithConditions,
  overrides: Readonly<Record<string, ConditionSpec>> | undefined,
): Record<string, ConditionSpec> {
  const names = metadata.conditionNames ?? [];
  const declared = metadata.conditions ?? {};
  const given = overrides ?? {};
  for (const [source, table] of [
    ['metadata.conditions', declared],
    ['conditions', given],
  ] as const) {
    if (table === null || typeof table !== 'object') {
      throw new InvalidArgumentError(source, 'an object { [conditionName]: spec }', describeValue(table));
    }
    for (const name of Object.keys(table)) {
      if (!names.includes(name)) {
        throw new InvalidArgumentError(
          `${source}.${name}`,
          `one of the teacher's conditioning inputs (${names.map((n) => `"${n}"`).join(', ') || 'none'})`,
          JSON.stringify(name),
        );
      }
    }
  }
  const specs: Record<string, ConditionSpec> = {};
  for (const name of names) {
    const parts = [
      declared[name] && checkSpec(`metadata.conditions.${name}`, declared[name]),
      given[name] && checkSpec(`conditions.${name}`, given[name]),
    ].filter((p): p is ConditionSpec => p !== undefined);
    if (parts.length === 0) continue;
    const merged = checkSpec(`conditions.${name}`, Object.assign({}, ...parts));
    if (merged.classes !== undefined) {
      merged.dtype = 'int32';
      merged.rowShape ??= [];
    }
    if (Object.keys(merged).length > 0) specs[name] = merged;
  }
  return specs;
}
