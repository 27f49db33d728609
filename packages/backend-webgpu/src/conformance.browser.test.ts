// The core conformance suites, rerun on tfjs's WebGPU backend in headless Chromium (navigator.gpu);
// conformance.node.test.ts runs the same through Dawn in Node.
import { describeWebGPUConformance } from './__fixtures__/webgpu-conformance';

describeWebGPUConformance();
