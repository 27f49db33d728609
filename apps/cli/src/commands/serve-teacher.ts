import path from 'node:path';
import { isFlowModel, loadModelDirectory } from '@piflow/models';
import { createTeacherSpecRegistry, serveTeacherCommand } from '@piflow/teacher-server';
import type { Command } from 'commander';
import { shippedModelsDir } from '../context';
import { builtinFamilies } from '../families';

async function modelTeacher(dir: string) {
  const { model, manifest } = await loadModelDirectory(dir, { families: Object.values(builtinFamilies) });
  if (!isFlowModel(model)) throw new Error(`${dir} holds a ${manifest.kind}, not a teacher.`);
  // Class-conditional teachers are served with the guidance recorded when they were trained.
  const guidanceScale = model.backbone.numClasses !== undefined ? (manifest.sampling?.guidanceScale ?? 1) : 1;
  const teacher = model.asTeacher({ shift: manifest.sampling?.shift ?? 1, guidanceScale });
  const classes = model.backbone.numClasses;
  return {
    ...teacher,
    metadata: {
      ...teacher.metadata,
      sampleShape: manifest.sampleShape,
      description: dir,
      // class-conditional teachers declare their labels, so the server answers 400 to labels outside them
      ...(classes !== undefined ? { conditions: { labels: { classes } } } : {}),
    },
    dispose: () => model.dispose(),
  };
}

/** `piflow serve-teacher`: the teacher server app, with the CLI's model folders and shipped teachers as specs. */
export function serveCommand(): Command {
  const registry = createTeacherSpecRegistry({
    checkerboard: () => modelTeacher(path.join(shippedModelsDir(), 'checkerboard', 'teacher')),
    mnist: () => modelTeacher(path.join(shippedModelsDir(), 'mnist', 'teacher')),
    model: (argument, context) => modelTeacher(path.resolve(context.cwd, argument)),
  });
  return serveTeacherCommand(registry).addHelpText(
    'after',
    '\nExamples:\n  piflow serve-teacher --teacher checkerboard --host 127.0.0.1 --port 8400\n  piflow serve-teacher --teacher model:runs/teacher/model --token secret\n',
  );
}
