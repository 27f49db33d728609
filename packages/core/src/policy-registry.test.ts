import { describe, expect, it } from 'vitest';
import { createPolicyRegistry, UnknownPolicyFamilyError } from './policy-registry';
import type { PolicyFamily } from './types';

const family = (name: string): PolicyFamily => ({
  specificationVersion: 'v1',
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
      createPolicyRegistry({ old: { ...family('old'), specificationVersion: 'v0' as never } }),
    ).toThrow(/specificationVersion/);
    expect(() => createPolicyRegistry({ bad: {} as never })).toThrow(/families.bad/);
  });
});
