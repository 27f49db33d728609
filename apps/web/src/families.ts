import { createPolicyRegistry, type PolicyFamily, type PolicyRegistry } from '@piflow/core';
import type { PolicyStudent } from '@piflow/models';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';

/**
 * The policy families this build of the demo includes: it loads and samples a student of any of them. Add a
 * plugin family here (`createPolicyRegistry({ gm, dx, myFamily })`) to show students of it.
 */
export const webFamilies: PolicyRegistry = createPolicyRegistry({ gm, dx });

/** The family of a student, from the registry (throws naming the registered families when it is not there). */
export function familyOf(student: PolicyStudent, families: PolicyRegistry = webFamilies): PolicyFamily {
  return families.get(student.family);
}

/** A student's label for the page: its family's label for its head options (e.g. "GM K=8 student"). */
export function studentLabel(student: PolicyStudent, families: PolicyRegistry = webFamilies): string {
  const family = families.has(student.family) ? families.get(student.family) : undefined;
  return `${family?.studentHead?.label?.(student.headOptions) ?? student.family} student`;
}
