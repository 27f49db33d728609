import { InvalidArgumentError, PiflowError } from './errors';
import { LOSS_WEIGHTINGS, POLICY_SPECIFICATION_VERSION, type PolicyFamily } from './policy-family';
import { describeValue } from './validation';

export interface PolicyRegistry {
  /** The family with this name; throws with the list of known names when there is none. */
  get(name: string): PolicyFamily;
  has(name: string): boolean;
  /** Registered names, in registration order. */
  names(): string[];
  /** A new registry with these families added (throws on a duplicate name). */
  with(families: Record<string, PolicyFamily>): PolicyRegistry;
}

/** Thrown when a registry is asked for a family it does not hold. */
export class UnknownPolicyFamilyError extends PiflowError {
  override name = 'UnknownPolicyFamilyError';
}

function assertFamily(key: string, family: unknown): asserts family is PolicyFamily {
  const f = family as Partial<PolicyFamily> | undefined;
  if (!f || typeof f !== 'object' || typeof f.create !== 'function' || typeof f.name !== 'string') {
    throw new InvalidArgumentError(
      `families.${key}`,
      'a PolicyFamily value ({ name, create, … })',
      describeValue(family),
    );
  }
  if (f.specificationVersion !== POLICY_SPECIFICATION_VERSION) {
    throw new InvalidArgumentError(
      `families.${key}.specificationVersion`,
      `'${POLICY_SPECIFICATION_VERSION}' (this version of @piflow/core implements policy specification ${POLICY_SPECIFICATION_VERSION}; ` +
        'v2 families also declare packageName, studentHead, training, sampling and fusedRollout: see docs/PLUGINS.md)',
      describeValue(f.specificationVersion),
    );
  }
  const weighting = f.training?.lossWeighting;
  if (weighting !== undefined && !(LOSS_WEIGHTINGS as readonly string[]).includes(weighting)) {
    throw new InvalidArgumentError(
      `families.${key}.training.lossWeighting`,
      `one of ${LOSS_WEIGHTINGS.map((w) => `'${w}'`).join(', ')}`,
      describeValue(weighting),
    );
  }
  const depth = f.training?.mlpDepth;
  if (depth !== undefined && typeof depth !== 'function' && !isBlockCount(depth)) {
    throw new InvalidArgumentError(
      `families.${key}.training.mlpDepth`,
      'an integer ≥ 1, or a function of the step count returning one',
      describeValue(depth),
    );
  }
  const rate = f.training?.learningRate;
  if (rate !== undefined && !(typeof rate === 'number' && rate > 0 && Number.isFinite(rate))) {
    throw new InvalidArgumentError(
      `families.${key}.training.learningRate`,
      'a number > 0',
      describeValue(rate),
    );
  }
}

/** Whether a value looks like a policy family of any specification version (a name and a create function). */
export function isPolicyFamily(value: unknown): value is PolicyFamily {
  const f = value as Partial<PolicyFamily> | undefined;
  return (
    typeof f === 'object' &&
    f !== null &&
    typeof f.name === 'string' &&
    typeof f.create === 'function' &&
    typeof f.specificationVersion === 'string'
  );
}

/**
 * The policy families a plugin module exports (its default export and every named export that is a family,
 * each once), e.g. `familiesFromModule(await import('piflow-policy-gaussian'))`. Throws when there is none.
 */
export function familiesFromModule(
  module: Record<string, unknown>,
  specifier = 'the module',
): PolicyFamily[] {
  const found: PolicyFamily[] = [];
  const candidates = [module.default, ...Object.values(module)];
  for (const value of candidates) {
    if (isPolicyFamily(value) && !found.includes(value)) found.push(value);
  }
  if (found.length === 0) {
    throw new PiflowError(
      `${specifier} exports no policy family (a value with specificationVersion, name and create); ` +
        'a plugin package exports its family, e.g. `export const gaussian = createGaussianFamily()`.',
    );
  }
  return found;
}

/**
 * Combines policy families explicitly: `createPolicyRegistry({ gm, dx, myFamily })`. Families are keyed by
 * their own `name`; two families with the same name throw.
 */
export function createPolicyRegistry(families: Record<string, PolicyFamily> = {}): PolicyRegistry {
  const map = new Map<string, PolicyFamily>();
  for (const [key, family] of Object.entries(families)) {
    assertFamily(key, family);
    if (map.has(family.name)) {
      throw new PiflowError(
        `Policy family "${family.name}" is registered twice (from key "${key}"); family names must be unique.`,
      );
    }
    map.set(family.name, family);
  }
  return {
    get(name) {
      const family = map.get(name);
      if (!family) {
        const known = [...map.keys()];
        throw new UnknownPolicyFamilyError(
          `Unknown policy family "${name}". Known families: ${known.length ? known.map((k) => `"${k}"`).join(', ') : '(none registered)'}.`,
        );
      }
      return family;
    },
    has: (name) => map.has(name),
    names: () => [...map.keys()],
    with(more) {
      return createPolicyRegistry({ ...Object.fromEntries(map), ...checkNoOverlap(map, more) });
    },
  };
}

function checkNoOverlap(map: Map<string, PolicyFamily>, more: Record<string, PolicyFamily>) {
  for (const [key, family] of Object.entries(more)) {
    assertFamily(key, family);
    if (map.has(family.name)) {
      throw new PiflowError(
        `Policy family "${family.name}" is already registered; family names must be unique.`,
      );
    }
  }
  return more;
}

const isBlockCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1;

/**
 * The residual blocks a family asks of a new MLP student with `numInferenceSteps` steps (`training.mlpDepth`, a
 * number or a function of the step count), or undefined when it asks for none.
 */
export function familyMlpDepth(family: PolicyFamily, numInferenceSteps: number): number | undefined {
  const depth = family.training?.mlpDepth;
  if (depth === undefined) return undefined;
  const blocks = typeof depth === 'function' ? depth(numInferenceSteps) : depth;
  if (!isBlockCount(blocks)) {
    throw new InvalidArgumentError(
      `${family.name}.training.mlpDepth(${numInferenceSteps})`,
      'an integer ≥ 1',
      describeValue(blocks),
    );
  }
  return blocks;
}
