export type { ConditionSpec, TeacherMetadataWithConditions } from './conditions';
export { defaultLimits, type ServerLimits } from './limits';
export { serveTeacherCommand, useTfjsBackend } from './serve-teacher-command';
export { createTeacherServer, type TeacherServer, type TeacherServerOptions } from './server';
export {
  analyticGMLoader,
  createTeacherSpecRegistry,
  type TeacherLoader,
  type TeacherSpecRegistry,
  tfjsLoader,
} from './teacher-specs';
