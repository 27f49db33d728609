#!/usr/bin/env node
// piflow-teacher-server: the serve-teacher command on its own (same options as `piflow serve-teacher`).
import { serveTeacherCommand } from './serve-teacher-command';

serveTeacherCommand()
  .name('piflow-teacher-server')
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    console.error(`piflow-teacher-server: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
