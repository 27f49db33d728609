import type { TeacherMetadata } from '@piflow/core';
import { protocolVersion, type WireMetadata } from '@piflow/teachers';
import type { ConditionSpec } from './conditions';
import { redactPaths } from './http-error';

/** What GET /v1/metadata answers: the protocol, the teacher's metadata, the limits and the condition specs. */
export type PublicMetadata = WireMetadata;

/**
 * The metadata the server shows: only the known TeacherMetadata fields (an adapter's other fields may hold
 * paths or internals), with the description replaced by `description` when given, else the teacher's own
 * with absolute paths shortened to their last segment.
 */
export function publicMetadata(
  metadata: TeacherMetadata,
  options: {
    description?: string;
    conditions: Readonly<Record<string, ConditionSpec>>;
    maxBatchSize: number;
    maxBodyBytes: number;
  },
): PublicMetadata {
  const { sampleShape, layout, shift, guidance, conditionNames } = metadata;
  const description =
    options.description ??
    (metadata.description !== undefined ? redactPaths(metadata.description) : undefined);
  const shown: TeacherMetadata = {
    ...(sampleShape ? { sampleShape: [...sampleShape] } : {}),
    ...(layout ? { layout } : {}),
    ...(shift !== undefined ? { shift } : {}),
    ...(guidance ? { guidance } : {}),
    conditionNames: [...(conditionNames ?? [])],
    ...(description !== undefined ? { description } : {}),
  };
  return {
    protocol: protocolVersion,
    metadata: shown,
    maxBatchSize: options.maxBatchSize,
    maxBodyBytes: options.maxBodyBytes,
    ...(Object.keys(options.conditions).length > 0
      ? {
          conditions: Object.fromEntries(
            Object.entries(options.conditions).map(([name, { rowShape, ...spec }]) => [
              name,
              { ...spec, ...(rowShape ? { rowShape: [...rowShape] } : {}) },
            ]),
          ),
        }
      : {}),
  };
}
