/**
 * The contract suite every teacher adapter passes (vitest).
 * @module @piflow/teachers/testing
 */
export {
  describeTeacherContract,
  type TeacherContractInputs,
  type TeacherContractOptions,
} from './teacher-contract';
