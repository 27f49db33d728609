import {
  assertNumber,
  assertTensor,
  disposeParams,
  flowMapSchedule,
  InvalidArgumentError,
  type PolicyRegistry,
  resolveFamilyOptions,
  rolloutSigmaGrid,
  sample,
} from '@piflow/core';
import type { FlowModel, ModelManifest, PolicyStudent } from '@piflow/models';
import * as tf from '@tensorflow/tfjs-core';
import { familyOf, webFamilies } from './families';

/** How a student is sampled: its manifest's sampling block, with the step count chosen in the page. */
export interface SamplingSettings {
  numInferenceSteps: number;
  shift: number;
  finalStepSizeScale: number;
  /** The student family's sampling options (e.g. GM `{ temperature: 0.3 }`), from the manifest. */
  familyOptions: Readonly<Record<string, number | string>>;
  /** Euler substeps per unit raw time in the policy rollouts and the teacher's ODE. */
  substeps: number;
}

export function samplingSettings(
  manifest: Pick<ModelManifest, 'sampling'>,
  numInferenceSteps: number,
  substeps = 128,
): SamplingSettings {
  assertNumber('numInferenceSteps', numInferenceSteps, { min: 1, integer: true });
  assertNumber('substeps', substeps, { min: 1, integer: true });
  const sampling = manifest?.sampling ?? {};
  const settings: SamplingSettings = {
    numInferenceSteps,
    shift: sampling.shift ?? 1,
    finalStepSizeScale: sampling.finalStepSizeScale ?? 1,
    familyOptions: { ...sampling.familyOptions },
    substeps,
  };
  assertNumber('manifest.sampling.shift', settings.shift, { min: 0, minExclusive: true });
  assertNumber('manifest.sampling.finalStepSizeScale', settings.finalStepSizeScale, {
    min: 0,
    max: 1,
    minExclusive: true,
  });
  return settings;
}

function assertStudent(student: PolicyStudent): void {
  if (typeof student?.family !== 'string' || typeof student.predict !== 'function') {
    throw new InvalidArgumentError('student', 'a student (createStudent / loadModelFromUrl)', typeof student);
  }
}

/** Few-step generation: `sample()` from @piflow/core (fused rollout kernels where the backend has them). */
export async function generateSamples(
  student: PolicyStudent,
  noise: tf.Tensor,
  settings: SamplingSettings,
  families: PolicyRegistry = webFamilies,
): Promise<Float32Array> {
  assertStudent(student);
  assertTensor('noise', noise, { rank: 2 });
  const x = sample(student, familyOf(student, families), noise, {
    ...settings,
    policyOptions: { ...student.policyOptions },
  });
  try {
    return (await x.data()) as Float32Array;
  } finally {
    x.dispose();
  }
}

/** States along paths: `points[(t·count + i)·dim + c]` is coordinate c of path i at state t. */
export interface Trajectories {
  /** Number of paths. */
  count: number;
  /** Number of states per path (substeps + 1). */
  length: number;
  /** Coordinates per state (2 for the 2-D demo). */
  dim: number;
  points: Float32Array;
  /** State indices where a network was evaluated (the student's steps; empty for the teacher's ODE). */
  evaluations: number[];
}

async function collect(states: tf.Tensor[], evaluations: number[]): Promise<Trajectories> {
  const stacked = tf.stack(states);
  try {
    const [length, count, dim] = stacked.shape as [number, number, number];
    return { count, length, dim, points: (await stacked.data()) as Float32Array, evaluations };
  } finally {
    stacked.dispose();
  }
}

/**
 * The policy's substep trajectories: what `sample()` computes, with every Euler substep kept. At each step the
 * student is evaluated once at (x, σ_src); its policy (with the family's sampling options) is then integrated to σ_dst on the same σ grid as
 * `rollout` (`rolloutSigmaGrid`), without further network evaluations. The last state equals `sample()`'s
 * output (ODE sampling) to float rounding.
 */
export async function policyTrajectories(
  student: PolicyStudent,
  noise: tf.Tensor,
  settings: SamplingSettings,
  families: PolicyRegistry = webFamilies,
): Promise<Trajectories> {
  assertStudent(student);
  assertTensor('noise', noise, { rank: 2 });
  const family = familyOf(student, families);
  const familyOptions = resolveFamilyOptions(
    'settings.familyOptions',
    family.sampling?.options,
    settings.familyOptions,
  );
  const schedule = flowMapSchedule(settings);
  const count = noise.shape[0]!;
  const states: tf.Tensor[] = [noise.clone()];
  const evaluations: number[] = [];
  try {
    for (let i = 0; i < schedule.numInferenceSteps; i++) {
      const sigmaSrc = schedule.sigmas[i]!;
      const isLast = i === schedule.numInferenceSteps - 1;
      const xSrc = states[states.length - 1]!;
      evaluations.push(states.length - 1);
      const sigma = tf.fill([count], sigmaSrc) as tf.Tensor1D;
      const params = student.predict(xSrc, sigma);
      sigma.dispose();
      const stepOptions = family.sampling?.policyOptions(familyOptions, {
        step: i,
        numInferenceSteps: schedule.numInferenceSteps,
        isLast,
      });
      const policy = family.create(params, xSrc, sigmaSrc, { ...student.policyOptions, ...stepOptions });
      try {
        const [grid] = rolloutSigmaGrid({
          sigmaSrc: Float32Array.of(sigmaSrc),
          sigmaDst: Float32Array.of(schedule.sigmasDst[i]!),
          substeps: settings.substeps,
          shift: schedule.shift,
        });
        for (let j = 0; j < grid!.length - 1; j++) {
          const x = states[states.length - 1]!;
          states.push(
            tf.tidy(() => tf.add(x, tf.mul(policy.velocity(x, grid![j]!), grid![j + 1]! - grid![j]!))),
          );
        }
      } finally {
        policy.dispose();
        disposeParams(params);
      }
    }
    return await collect(states, evaluations);
  } finally {
    tf.dispose(states);
  }
}

/**
 * The teacher's ODE from the same noise: Euler on the rollout grid from σ = 1 to 0 (the same substeps per unit
 * raw time and shift as the policy rollouts), one teacher evaluation per substep.
 */
export async function teacherTrajectories(
  teacher: FlowModel,
  noise: tf.Tensor,
  settings: Pick<SamplingSettings, 'shift' | 'substeps'>,
): Promise<Trajectories> {
  if (!teacher || typeof teacher.velocity !== 'function') {
    throw new InvalidArgumentError(
      'teacher',
      'a flow model (createFlowModel / loadModelFromUrl)',
      typeof teacher,
    );
  }
  assertTensor('noise', noise, { rank: 2 });
  assertNumber('settings.substeps', settings?.substeps, { min: 1, integer: true });
  assertNumber('settings.shift', settings.shift, { min: 0, minExclusive: true });
  const [grid] = rolloutSigmaGrid({
    sigmaSrc: Float32Array.of(1),
    sigmaDst: Float32Array.of(0),
    substeps: settings.substeps,
    shift: settings.shift,
  });
  const states: tf.Tensor[] = [noise.clone()];
  try {
    for (let j = 0; j < grid!.length - 1; j++) {
      const x = states[states.length - 1]!;
      states.push(
        tf.tidy(() => tf.add(x, tf.mul(teacher.velocity(x, grid![j]!), grid![j + 1]! - grid![j]!))),
      );
    }
    return await collect(states, []);
  } finally {
    tf.dispose(states);
  }
}
