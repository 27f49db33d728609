import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import type * as tf from '@tensorflow/tfjs-core';

/** Invocations per workgroup of the fused kernels (one invocation per position). */
export const WORKGROUP_SIZE = 64;

/**
 * The most inputs a program may bind: the device tfjs requests has 8 storage buffers per shader stage, one of
 * which is the output; a 9th binding fails silently (a stale buffer is read).
 */
export const MAX_PROGRAM_INPUTS = 7;

/**
 * A compute program over `numInvocations` flat invocations (dispatched in workgroups of WORKGROUP_SIZE)
 * writing a float32 output of `outputShape`. The WGSL of `body` is wrapped in tfjs's generated prelude: inputs
 * bind as `array<f32>` under their variable names, uniforms as `uniforms.<name>`.
 */
export function makeProgram(options: {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  numInvocations: number;
  uniforms: string;
  body: string;
}): WebGPUProgram {
  if (options.variableNames.length > MAX_PROGRAM_INPUTS) {
    throw new Error(
      `A WebGPU program binds at most ${MAX_PROGRAM_INPUTS} inputs; got ${options.variableNames.length}.`,
    );
  }
  const program: WebGPUProgram = {
    variableNames: options.variableNames,
    outputShape: options.outputShape,
    shaderKey: options.shaderKey,
    dispatchLayout: { x: [0] },
    dispatch: [Math.max(1, Math.ceil(options.numInvocations / WORKGROUP_SIZE)), 1, 1],
    workgroupSize: [WORKGROUP_SIZE, 1, 1],
    uniforms: options.uniforms,
    getUserCode: () => options.body,
  };
  return program;
}

/** Runs a program on the WebGPU backend (a new program object per call, as tfjs caches by shaderKey). */
export function runProgram(
  backend: unknown,
  program: WebGPUProgram,
  inputs: tf.TensorInfo[],
  uniforms: Array<{ type: 'int32' | 'float32'; data: number[] }>,
): tf.TensorInfo {
  return (backend as WebGPUBackend).runWebGPUProgram(program, inputs, 'float32', uniforms);
}

/** `join(range(n).map(f), sep)`: the WGSL generators unroll every K/C/N loop with constant indices. */
export function unroll(n: number, f: (i: number) => string, separator = '\n'): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(separator);
}

/** `max(max(p0, p1), p2)…` over p0…p(n−1). */
export function nestedMax(n: number, prefix: string): string {
  let expression = `${prefix}0`;
  for (let i = 1; i < n; i++) expression = `max(${expression}, ${prefix}${i})`;
  return expression;
}
