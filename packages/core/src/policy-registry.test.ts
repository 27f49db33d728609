import { describe, expect, it } from 'vitest';
import type { PolicyFamily } from './policy-family';
import {
  createPolicyRegistry,
  familiesFromModule,
  familyMlpDepth,
  isPolicyFamily,
  UnknownPolicyFamilyError,
} from './policy-registry';

const family = (name: string): PolicyFamily => ({
  specificationVersion: 'v2',
  name,
  paramShapes: () => ({}),
  create: () => {
    throw new Error('not used');
  },
});

describe('policy registry', () => {
  it('combines families explicitly and looks them up by name', () => {
    const registry = createPolicyRegistry({ a: family('gm'), b: family('dx') });
    expect(registry.names()).toEqual(['gm', 'dx']);
    expect(registry.get('dx').name).toBe('dx');
    expect(registry.has('gm')).toBe(true);
    const more = registry.with({ mine: family('mine') });
    expect(more.names()).toEqual(['gm', 'dx', 'mine']);
    expect(registry.has('mine')).toBe(false);
  });

  it('throws on duplicate names, unknown names (listing known ones) and wrong spec versions', () => {
    expect(() => createPolicyRegistry({ a: family('gm'), b: family('gm') })).toThrow(/registered twice/);
    const registry = createPolicyRegistry({ gm: family('gm'), dx: family('dx') });
    expect(() => registry.with({ again: family('dx') })).toThrow(/already registered/);
    expect(() => registry.get('flow')).toThrow(UnknownPolicyFamilyError);
    expect(() => registry.get('flow')).toThrow('Known families: "gm", "dx"');
    expect(() =>
      createPolicyRegistry({ old: { ...family('old'), specificationVersion: 'v1' as never } }),
    ).toThrow(/families.old.specificationVersion.*'v2'.*studentHead/);
    expect(() => createPolicyRegistry({ bad: {} as never })).toThrow(/families.bad/);
    const training = { options: {}, policyOptions: () => ({}) };
    expect(() =>
      createPolicyRegistry({ w: { ...family('w'), training: { ...training, lossWeighting: 'u' as never } } }),
    ).toThrow(/families.w.training.lossWeighting/);
    expect(() =>
      createPolicyRegistry({ r: { ...family('r'), training: { ...training, learningRate: -1 } } }),
    ).toThrow(/families.r.training.learningRate/);
    for (const mlpDepth of [0, 2.5, '6' as never]) {
      expect(() =>
        createPolicyRegistry({ d: { ...family('d'), training: { ...training, mlpDepth } } }),
      ).toThrow(/families.d.training.mlpDepth.*an integer ≥ 1/);
    }
    // a depth per step count: checked when read
    const perSteps = {
      ...family('p'),
      training: { ...training, mlpDepth: (n: number) => (n <= 2 ? 3 : n / 2) },
    };
    createPolicyRegistry({ p: perSteps });
    expect([1, 2, 4, 8].map((n) => familyMlpDepth(perSteps, n))).toEqual([3, 3, 2, 4]);
    expect(() => familyMlpDepth(perSteps, 3)).toThrow(/p.training.mlpDepth\(3\).*an integer ≥ 1.*1\.5/);
    expect(familyMlpDepth({ ...family('q'), training: { ...training, mlpDepth: 6 } }, 4)).toBe(6);
    expect(familyMlpDepth(family('r'), 4)).toBeUndefined();
    expect(
      createPolicyRegistry({
        ok: {
          ...family('ok'),
          training: { ...training, lossWeighting: 'x0', learningRate: 1e-3, mlpDepth: 6 },
        },
      }).names(),
    ).toEqual(['ok']);
  });
});

describe('plugin modules', () => {
  it('finds every family a module exports (default and named, each once) and rejects modules without one', () => {
    const a = family('a');
    const b = family('b');
    expect(familiesFromModule({ default: a, a, b, helper: () => 1, n: 3 })).toEqual([a, b]);
    expect(() => familiesFromModule({ x: 1 }, 'my-plugin')).toThrow(/my-plugin exports no policy family/);
    expect(isPolicyFamily({ name: 'x', create: () => 0, specificationVersion: 'v1' })).toBe(true);
    expect(isPolicyFamily({ name: 'x' })).toBe(false);
  });
});
