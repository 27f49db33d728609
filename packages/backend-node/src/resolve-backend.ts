import { describeValue, InvalidArgumentError, PiflowError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import { type BackendCandidate, defaultBackendCandidates } from './backend-candidates';
import { NoBackendAvailableError, type SkippedBackend } from './errors';
import { importModule, type ModuleLoader } from './module-loader';

export interface ResolveBackendOptions {
  /**
   * Candidate names to try first, in this order (e.g. 'wasm' or ['webgpu', 'wasm']); the others follow by
   * priority unless `fallback` is false.
   */
  prefer?: string | readonly string[];
  /** Try the non-preferred candidates after the preferred ones (default true). */
  fallback?: boolean;
  /** How optional packages are loaded (default: `import()`). Each loader gets its own cached registry. */
  loader?: ModuleLoader;
}

/** The outcome of `resolveBackend`: the active backend, and why every other candidate was not used. */
export interface ResolvedBackend {
  /** Candidate name, e.g. 'wasm'. */
  name: string;
  /** The tfjs backend now active (`tf.getBackend()`), e.g. 'wasm' or 'tensorflow'. */
  backendName: string;
  /** Every other candidate, in the order considered, with its reason and install hint. */
  skipped: SkippedBackend[];
}

export interface BackendRegistry {
  /** Adds a candidate (a name may be registered once). */
  register(candidate: BackendCandidate): void;
  /** Registered candidates, highest priority first. */
  candidates(): BackendCandidate[];
  /** Makes the best available backend active (see `resolveBackend`). */
  resolve(options?: Omit<ResolveBackendOptions, 'loader'>): Promise<ResolvedBackend>;
}

type InitOutcome = { ok: true } | { ok: false; reason: string };

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Checks that the active backend computes: 1 + 2 = 3 read back from the device. */
async function smokeTest(): Promise<void> {
  const a = tf.scalar(1);
  const b = tf.scalar(2);
  const sum = tf.add(a, b);
  try {
    const value = (await sum.data())[0];
    if (value !== 3) throw new Error(`smoke test computed 1 + 2 = ${value}`);
  } finally {
    tf.dispose([a, b, sum]);
  }
}

async function activate(candidate: BackendCandidate): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(candidate.backendName);
  } catch (error) {
    throw new Error(`tf.setBackend("${candidate.backendName}") threw: ${reasonOf(error).split('\n')[0]}`);
  }
  if (!ok || tf.getBackend() !== candidate.backendName) {
    throw new Error(`tf.setBackend("${candidate.backendName}") failed to initialise the backend`);
  }
  await tf.ready();
}

function assertCandidate(candidate: unknown): asserts candidate is BackendCandidate {
  const c = candidate as Partial<BackendCandidate> | null;
  if (
    !c ||
    typeof c !== 'object' ||
    typeof c.name !== 'string' ||
    typeof c.backendName !== 'string' ||
    typeof c.priority !== 'number' ||
    !Number.isFinite(c.priority) ||
    typeof c.installHint !== 'string' ||
    typeof c.init !== 'function'
  ) {
    throw new InvalidArgumentError(
      'candidate',
      'a BackendCandidate ({ name, backendName, priority, installHint, init })',
      describeValue(candidate),
    );
  }
}

/**
 * A registry of backend candidates (onnxruntime's `registerBackend` style). Each candidate initialises at
 * most once (the promise is cached); a failed initialisation marks it unusable with its reason.
 */
export function createBackendRegistry(
  options: { loader?: ModuleLoader; candidates?: readonly BackendCandidate[] } = {},
): BackendRegistry {
  const { loader = importModule, candidates = defaultBackendCandidates } = options;
  if (typeof loader !== 'function') {
    throw new InvalidArgumentError(
      'options.loader',
      'a function (specifier) => Promise<module>',
      describeValue(loader),
    );
  }
  const registered = new Map<string, BackendCandidate>();
  const outcomes = new Map<string, Promise<InitOutcome>>();

  const register = (candidate: BackendCandidate) => {
    assertCandidate(candidate);
    if (registered.has(candidate.name)) {
      throw new PiflowError(
        `Backend candidate "${candidate.name}" is registered twice; names must be unique.`,
      );
    }
    registered.set(candidate.name, candidate);
  };
  for (const candidate of candidates) register(candidate);

  const sorted = () => [...registered.values()].sort((a, b) => b.priority - a.priority);

  const initialise = (candidate: BackendCandidate): Promise<InitOutcome> => {
    let outcome = outcomes.get(candidate.name);
    if (!outcome) {
      outcome = (async (): Promise<InitOutcome> => {
        try {
          await candidate.init({ loader });
          await activate(candidate);
          await smokeTest();
          return { ok: true };
        } catch (error) {
          return { ok: false, reason: reasonOf(error) };
        }
      })();
      outcomes.set(candidate.name, outcome);
    }
    return outcome;
  };

  return {
    register,
    candidates: sorted,
    async resolve(resolveOptions = {}) {
      if (typeof resolveOptions !== 'object' || resolveOptions === null) {
        throw new InvalidArgumentError('options', 'an options object', describeValue(resolveOptions));
      }
      const { prefer, fallback = true } = resolveOptions;
      if (typeof fallback !== 'boolean') {
        throw new InvalidArgumentError('options.fallback', 'a boolean', describeValue(fallback));
      }
      const known = sorted();
      const names = known.map((c) => c.name);
      const preferred = prefer === undefined ? [] : typeof prefer === 'string' ? [prefer] : prefer;
      if (!Array.isArray(preferred) || ((preferred as unknown[]).length === 0 && prefer !== undefined)) {
        throw new InvalidArgumentError(
          'options.prefer',
          `a candidate name or a non-empty array of them (${names.map((n) => JSON.stringify(n)).join(', ')})`,
          describeValue(prefer),
        );
      }
      for (const [i, name] of preferred.entries()) {
        if (typeof name !== 'string' || !registered.has(name)) {
          throw new InvalidArgumentError(
            typeof prefer === 'string' ? 'options.prefer' : `options.prefer[${i}]`,
            `one of ${names.map((n) => JSON.stringify(n)).join(', ')}`,
            describeValue(name),
          );
        }
      }
      const preferredCandidates = [...new Set(preferred)].map(
        (name) => registered.get(name) as BackendCandidate,
      );
      const order = fallback
        ? [...preferredCandidates, ...known.filter((c) => !preferredCandidates.includes(c))]
        : preferredCandidates.length > 0
          ? preferredCandidates
          : known;

      const failures: SkippedBackend[] = [];
      for (const [index, candidate] of order.entries()) {
        const outcome = await initialise(candidate);
        if (outcome.ok) {
          // Another resolve may have switched backends since this one initialised: make it active again.
          try {
            await activate(candidate);
          } catch (error) {
            failures.push({
              name: candidate.name,
              reason: reasonOf(error),
              installHint: candidate.installHint,
            });
            continue;
          }
          const notTried = order.slice(index + 1).map((c) => ({
            name: c.name,
            reason: `not tried: "${candidate.name}" comes first`,
            installHint: c.installHint,
          }));
          const excluded = known
            .filter((c) => !order.includes(c))
            .map((c) => ({
              name: c.name,
              reason: 'not tried: not in `prefer` and `fallback` is false',
              installHint: c.installHint,
            }));
          return {
            name: candidate.name,
            backendName: candidate.backendName,
            skipped: [...failures, ...notTried, ...excluded],
          };
        }
        failures.push({ name: candidate.name, reason: outcome.reason, installHint: candidate.installHint });
      }
      throw new NoBackendAvailableError(failures);
    },
  };
}

const registries = new WeakMap<ModuleLoader, BackendRegistry>();
let defaultRegistry: BackendRegistry | undefined;

/**
 * Chooses and activates the best tfjs backend available in this Node process: `@tensorflow/tfjs-node-gpu`
 * (CUDA) → `@tensorflow/tfjs-node` → WebGPU via Dawn (`@piflow/backend-webgpu`) → wasm → cpu. Native
 * packages are optional peers loaded lazily; each candidate initialises once. Returns the chosen backend and
 * why each other one was skipped; throws `NoBackendAvailableError` listing every candidate with its reason
 * and install hint when none works.
 */
export async function resolveBackend(options: ResolveBackendOptions = {}): Promise<ResolvedBackend> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError('options', 'an options object', describeValue(options));
  }
  const { loader, ...rest } = options;
  let registry: BackendRegistry;
  if (loader === undefined) {
    defaultRegistry ??= createBackendRegistry();
    registry = defaultRegistry;
  } else {
    if (typeof loader !== 'function') {
      throw new InvalidArgumentError(
        'options.loader',
        'a function (specifier) => Promise<module>',
        describeValue(loader),
      );
    }
    registry = registries.get(loader) ?? createBackendRegistry({ loader });
    registries.set(loader, registry);
  }
  return registry.resolve(rest);
}
