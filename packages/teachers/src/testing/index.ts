export {
  describeTeacherContract,
  type TeacherContractInputs,
  type TeacherContractOptions,
} from './teacher-contract';
