import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describeValue, InvalidArgumentError, type Teacher } from '@piflow/core';
import {
  createAnalyticGMTeacher,
  loadTfjsModelTeacher,
  type TfjsModelDescription,
  type TfjsModelInputs,
  type TfjsModelTeacher,
} from '@piflow/teachers';
import type { ConditionSpec, TeacherMetadataWithConditions } from './conditions';

/** Builds a teacher from the part of a spec after `<kind>:` (e.g. a file or directory path). */
export type TeacherLoader = (argument: string, context: { cwd: string }) => Promise<Teacher>;

export interface TeacherSpecRegistry {
  /** Adds a kind (throws if the name is taken). */
  register(kind: string, loader: TeacherLoader): void;
  /** The registered kinds. */
  kinds(): string[];
  /** Loads `<kind>:<argument>` (e.g. `analytic-gm:mixture.json`, `tfjs:./model-dir`). */
  load(spec: string, context?: { cwd?: string }): Promise<Teacher>;
}

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidArgumentError(
      'teacher',
      `a readable ${what}`,
      `${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError('teacher', `a JSON ${what}`, `${file} (${(error as Error).message})`);
  }
}

/**
 * `analytic-gm:<file.json>`: `{ "means": number[][], "std": number, "weights": number[], "shift"?: number }`,
 * the exact Gaussian-mixture flow.
 */
export const analyticGMLoader: TeacherLoader = async (argument, { cwd }) => {
  const file = path.resolve(cwd, argument);
  const spec = (await readJson(file, 'Gaussian-mixture file { means, std, weights }')) as {
    means: number[][];
    std: number;
    weights?: number[];
    shift?: number;
  };
  return createAnalyticGMTeacher(spec);
};

/**
 * The row shape (shape without the batch axis) of each conditioning input whose model input has a fully
 * known shape, so the server refuses other shapes with 400 instead of failing in the model.
 */
function conditionRowShapes(teacher: TfjsModelTeacher, inputs: TfjsModelInputs | undefined) {
  const model = teacher.model as {
    inputNames?: string[];
    inputs: ReadonlyArray<{ name?: string; shape?: ReadonlyArray<number | null> }>;
  };
  const names = model.inputNames ?? model.inputs.map((i) => i.name ?? '');
  const shapes = model.inputs.map((i) => i.shape);
  const mapping =
    inputs?.condition ?? Object.fromEntries(teacher.metadata.conditionNames?.map((n) => [n, n]) ?? []);
  const specs: Record<string, ConditionSpec> = {};
  for (const name of teacher.metadata.conditionNames ?? []) {
    const shape = shapes[names.indexOf(mapping[name] ?? name)];
    const row = shape?.slice(1);
    if (shape && shape.length >= 1 && row!.every((d) => typeof d === 'number' && d > 0)) {
      specs[name] = { rowShape: row as number[] };
    }
  }
  return specs;
}

/**
 * `tfjs:<dir>`: a tfjs model directory (model.json + weight shards, layers or graph format) with an optional
 * `teacher.json` beside it describing its inputs: `{ "predictionType", "timestepScale", "inputs": { "x",
 * "timestep", "condition": { name: inputName } }, "sampleShape", "layout", "shift", "conditions": { name:
 * { "dtype", "rowShape", "classes" } } }`. Conditioning inputs take the row shape of their model input when
 * it is fully known; `conditions` adds to that (e.g. `{ "labels": { "classes": 10 } }`).
 */
export const tfjsLoader: TeacherLoader = async (argument, { cwd }) => {
  const dir = path.resolve(cwd, argument);
  let description: TfjsModelDescription & { conditions?: Record<string, ConditionSpec> } = {};
  try {
    description = JSON.parse(await readFile(path.join(dir, 'teacher.json'), 'utf8')) as typeof description;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new InvalidArgumentError(
        'teacher',
        `a valid ${path.join(dir, 'teacher.json')}`,
        (error as Error).message,
      );
    }
  }
  const { conditions: declared = {}, ...modelDescription } = description;
  const isObject = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isObject(declared) || !Object.values(declared).every(isObject)) {
    throw new InvalidArgumentError(
      'teacher',
      `"conditions" in ${path.join(dir, 'teacher.json')} as { name: { dtype?, rowShape?, classes? } }`,
      describeValue(declared),
    );
  }
  const teacher = await loadTfjsModelTeacher({ ...modelDescription, source: dir });
  const conditions: Record<string, ConditionSpec> = conditionRowShapes(teacher, modelDescription.inputs);
  for (const [name, spec] of Object.entries(declared)) conditions[name] = { ...conditions[name], ...spec };
  if (Object.keys(conditions).length === 0) return teacher;
  const metadata: TeacherMetadataWithConditions = { ...teacher.metadata, conditions };
  return { ...teacher, metadata };
};

/** A registry of teacher kinds for `--teacher <kind>:<argument>`; new kinds plug in with `register`. */
export function createTeacherSpecRegistry(loaders: Record<string, TeacherLoader> = {}): TeacherSpecRegistry {
  const table = new Map<string, TeacherLoader>();
  const registry: TeacherSpecRegistry = {
    register(kind, loader) {
      if (typeof kind !== 'string' || !/^[a-z][a-z0-9-]*$/.test(kind)) {
        throw new InvalidArgumentError('kind', 'a lower-case name like "analytic-gm"', describeValue(kind));
      }
      if (typeof loader !== 'function')
        throw new InvalidArgumentError('loader', 'a function', describeValue(loader));
      if (table.has(kind))
        throw new InvalidArgumentError('kind', 'a kind not registered yet', JSON.stringify(kind));
      table.set(kind, loader);
    },
    kinds: () => [...table.keys()],
    async load(spec, context = {}) {
      if (typeof spec !== 'string')
        throw new InvalidArgumentError('teacher', 'a spec <kind>:<argument>', describeValue(spec));
      const colon = spec.indexOf(':');
      const kind = colon < 0 ? spec : spec.slice(0, colon);
      const argument = colon < 0 ? '' : spec.slice(colon + 1);
      const loader = table.get(kind);
      if (!loader) {
        throw new InvalidArgumentError(
          'teacher',
          `a spec <kind>:<argument> with kind one of ${[...table.keys()].map((k) => JSON.stringify(k)).join(', ')}`,
          JSON.stringify(spec),
        );
      }
      return loader(argument, { cwd: context.cwd ?? process.cwd() });
    },
  };
  for (const [kind, loader] of Object.entries({
    'analytic-gm': analyticGMLoader,
    tfjs: tfjsLoader,
    ...loaders,
  })) {
    registry.register(kind, loader);
  }
  return registry;
}
