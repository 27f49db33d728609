import { InvalidArgumentError, PiflowError } from '@piflow/core';
import {
  type FlowModel,
  isFlowModel,
  loadModelFromUrl,
  type ModelManifest,
  type PolicyStudent,
} from '@piflow/models';
import { webFamilies } from './families';

/** The step counts the shipped students were trained for (folders gm-1, gm-2, gm-4). */
export const studentSteps = [1, 2, 4] as const;
export type StudentSteps = (typeof studentSteps)[number];

export interface DemoModels {
  teacher: { model: FlowModel; manifest: ModelManifest };
  students: Map<StudentSteps, { model: PolicyStudent; manifest: ModelManifest }>;
  dispose(): void;
}

/**
 * Loads the 2-D demo's models from `<baseUrl><dataset>/{teacher,gm-1,gm-2,gm-4}/` (each `model.json` +
 * `weights.bin`) onto the active tfjs backend.
 */
export async function loadDemoModels(
  baseUrl: string,
  dataset = 'checkerboard',
  fetchImpl: typeof fetch = fetch,
): Promise<DemoModels> {
  if (typeof baseUrl !== 'string' || baseUrl.length === 0) {
    throw new InvalidArgumentError('baseUrl', 'a URL string such as "./models/"', String(baseUrl));
  }
  const root = `${baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`}${dataset}/`;
  const loaded = await Promise.all([
    loadModelFromUrl(`${root}teacher/`, { fetch: fetchImpl, families: webFamilies }),
    ...studentSteps.map((steps) =>
      loadModelFromUrl(`${root}gm-${steps}/`, { fetch: fetchImpl, families: webFamilies }),
    ),
  ]);
  const dispose = () => {
    for (const entry of loaded) entry.model.dispose();
  };
  const [teacher, ...students] = loaded;
  if (!isFlowModel(teacher!.model)) {
    dispose();
    throw new PiflowError(`${root}teacher/ holds a ${teacher!.manifest.kind}, not a flow model.`);
  }
  const map = new Map<StudentSteps, { model: PolicyStudent; manifest: ModelManifest }>();
  for (const [i, entry] of students.entries()) {
    if (isFlowModel(entry.model)) {
      dispose();
      throw new PiflowError(`${root}gm-${studentSteps[i]}/ holds a ${entry.manifest.kind}, not a student.`);
    }
    map.set(studentSteps[i]!, entry as { model: PolicyStudent; manifest: ModelManifest });
  }
  return { teacher: teacher as { model: FlowModel; manifest: ModelManifest }, students: map, dispose };
}
