import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors';
import { describeFamilyOption, parseFamilyOptionValue, resolveFamilyOptions } from './family-options';
import type { FamilyOptionSpecs } from './policy-family';

const specs: FamilyOptionSpecs = {
  count: { type: 'integer', min: 1, default: 8, description: 'how many' },
  rate: { type: 'number', min: 0, max: 1, maxExclusive: true, description: 'a rate' },
  mode: { type: 'string', choices: ['grid', 'polynomial'], default: 'grid', description: 'which' },
  temperature: { type: 'number-or-auto', min: 0, minExclusive: true, default: 1, description: 'T' },
};

describe('family options', () => {
  it('fills defaults, keeps given values and leaves unset options without a default out', () => {
    expect(resolveFamilyOptions('options.head', specs, {})).toEqual({
      count: 8,
      mode: 'grid',
      temperature: 1,
    });
    expect(resolveFamilyOptions('options.head', specs, { rate: 0.5, temperature: 'auto', count: 3 })).toEqual(
      {
        count: 3,
        rate: 0.5,
        mode: 'grid',
        temperature: 'auto',
      },
    );
  });

  it('rejects unknown names, out-of-range values and wrong types, naming the argument', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ size: 3 }, /options.head.size.*declared options: count, rate, mode, temperature/],
      [{ count: 0 }, /options.head.count/],
      [{ count: 2.5 }, /options.head.count.*integer/],
      [{ rate: 1 }, /options.head.rate/],
      [{ rate: Number.NaN }, /options.head.rate/],
      [{ mode: 'spline' }, /options.head.mode/],
      [{ temperature: 0 }, /options.head.temperature/],
      [{ temperature: 'hot' }, /options.head.temperature/],
    ];
    for (const [values, message] of bad) {
      expect(() => resolveFamilyOptions('options.head', specs, values)).toThrow(InvalidArgumentError);
      expect(() => resolveFamilyOptions('options.head', specs, values)).toThrow(message);
    }
    expect(() => resolveFamilyOptions('options.training', undefined, { dropout: 0.1 })).toThrow(
      /options.training.dropout.*declares none/,
    );
  });

  it('parses text strictly and describes options for help texts', () => {
    expect(parseFamilyOptionValue('--head count', specs.count!, '12')).toBe(12);
    expect(parseFamilyOptionValue('--x', specs.temperature!, 'auto')).toBe('auto');
    expect(parseFamilyOptionValue('--x', specs.rate!, '1e-2')).toBe(0.01);
    expect(parseFamilyOptionValue('--x', specs.mode!, 'grid')).toBe('grid');
    for (const text of ['0x3', '', 'Infinity', '1,5', 'auto']) {
      expect(() => parseFamilyOptionValue('--head count', specs.count!, text)).toThrow(/--head count/);
    }
    expect(describeFamilyOption('count', specs.count!)).toBe('count (integer ≥ 1, default 8): how many');
    expect(describeFamilyOption('mode', specs.mode!)).toBe(
      "mode (string 'grid' | 'polynomial', default grid): which",
    );
  });
});
