import { createVitestConfig } from '@piflow/vitest-config';

export default createVitestConfig();
