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
 * writing a float32 output of `outputShape`. The WGSL that `body` returns (with its own
 * `fn main(index : i32)`) is wrapped in tfjs's generated prelude: inputs bind as `array<f32>` (or
 * `array<vec4<f32>>` where `variableComponents` says 4) under their variable names, uniforms as
 * `uniforms.<name>`; `outputComponent` 4 binds `result` as vec4s.
 */
export function makeProgram(options: {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  numInvocations: number;
  uniforms: string;
  /** The WGSL, generated only when tfjs compiles the program (it caches pipelines by shaderKey). */
  body: () => string;
  variableComponents?: number[];
  outputComponent?: number;
}): WebGPUProgram {
  if (options.variableNames.length > MAX_PROGRAM_INPUTS) {
    throw new Error(
      `A WebGPU program binds at most ${MAX_PROGRAM_INPUTS} inputs; got ${options.variableNames.length}.`,
    );
  }
  if (!fitsDispatch(options.numInvocations)) {
    throw new Error(
      `A WebGPU program dispatches at most ${MAX_INVOCATIONS} invocations; got ${options.numInvocations}.`,
    );
  }
  return {
    variableNames: options.variableNames,
    outputShape: options.outputShape,
    shaderKey: options.shaderKey,
    dispatchLayout: { x: [0] },
    dispatch: [Math.max(1, Math.ceil(options.numInvocations / WORKGROUP_SIZE)), 1, 1],
    workgroupSize: [WORKGROUP_SIZE, 1, 1],
    uniforms: options.uniforms,
    getUserCode: options.body,
    ...(options.variableComponents ? { variableComponents: options.variableComponents } : {}),
    ...(options.outputComponent ? { outputComponent: options.outputComponent } : {}),
  };
}

/** Most invocations of one flat dispatch (WebGPU's default 65 535 workgroups per dimension). */
export const MAX_INVOCATIONS = 65535 * WORKGROUP_SIZE;

/** Whether makeProgram can dispatch `numInvocations` flat invocations within WebGPU's default limits. */
export function fitsDispatch(numInvocations: number): boolean {
  return numInvocations <= MAX_INVOCATIONS;
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
  return range(n, f).join(separator);
}

/**
 * A balanced tree of `op` over the terms: depth ⌈log2 n⌉ instead of a left fold's n − 1. llvmpipe runs each
 * SIMD group's shader serially and does not reassociate float math, so the dependency chain of a reduction is
 * its latency.
 */
export function treeReduce(terms: string[], op: (a: string, b: string) => string): string {
  if (terms.length === 0) throw new Error('treeReduce needs at least one term.');
  if (terms.length === 1) return terms[0]!;
  const half = Math.ceil(terms.length / 2);
  return op(treeReduce(terms.slice(0, half), op), treeReduce(terms.slice(half), op));
}

/**
 * Σ a_i·b_i (+ init) as fused multiply-adds: llvmpipe does not contract a·b + c on its own, so written-out
 * sums of products cost twice the instructions. Two interleaved chains (joined by one add) when there are 8
 * or more terms halve the dependency chain.
 */
export function dot(pairs: Array<[string, string]>, init?: string): string {
  if (pairs.length === 0) return init ?? '0.0';
  const chain = (terms: Array<[string, string]>, start?: string): string =>
    terms.reduce<string>(
      (acc, [a, b], i) => (i === 0 && start === undefined ? `${a} * ${b}` : `fma(${a}, ${b}, ${acc})`),
      start ?? '',
    );
  if (pairs.length < 8) return chain(pairs, init);
  const even = pairs.filter((_, i) => i % 2 === 0);
  const odd = pairs.filter((_, i) => i % 2 === 1);
  return `(${chain(even, init)} + ${chain(odd)})`;
}

/** `(t0 + t1) + (t2 + t3)…` as a balanced tree. */
export const treeSum = (terms: string[]): string => treeReduce(terms, (a, b) => `(${a} + ${b})`);

/** `max(max(t0, t1), max(t2, t3))…` as a balanced tree. */
export const treeMax = (terms: string[]): string => treeReduce(terms, (a, b) => `max(${a}, ${b})`);

/** `[f(0), …, f(n − 1)]`. */
export const range = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/**
 * WGSL that loads `count` consecutive floats of `buffer` from element `base` (a WGSL expression) into
 * `let` constants named `name(i)`. With `vec4` (the buffer bound as `array<vec4<f32>>`; base and count
 * multiples of 4) it issues one load per 4 floats: llvmpipe turns every storage load whose address differs
 * per lane into a lane-by-lane loop with bounds checks, so 4× fewer loads is most of a kernel's prologue.
 */
export function loadFloats(
  buffer: string,
  base: string,
  count: number,
  name: (i: number) => string,
  vec4: boolean,
  indent = '  ',
): string {
  if (!vec4) return unroll(count, (i) => `${indent}let ${name(i)} = ${buffer}[${base} + ${i}];`);
  return unroll(
    count / 4,
    (q) =>
      `${indent}let ${name(4 * q)}v = ${buffer}[(${base}) / 4 + ${q}];\n` +
      unroll(4, (j) => `${indent}let ${name(4 * q + j)} = ${name(4 * q)}v.${'xyzw'[j]};`),
  );
}

/** WGSL that stores `value(i)` for i < count at `result[base + i]` (as vec4s when `vec4`, see loadFloats). */
export function storeFloats(
  base: string,
  count: number,
  value: (i: number) => string,
  vec4: boolean,
  indent = '  ',
) {
  if (!vec4) return unroll(count, (i) => `${indent}result[${base} + ${i}] = ${value(i)};`);
  return unroll(
    count / 4,
    (q) =>
      `${indent}result[(${base}) / 4 + ${q}] = vec4<f32>(${range(4, (j) => value(4 * q + j)).join(', ')});`,
  );
}
