import { FusedRolloutDeclined } from '@piflow/core';
import type { DXFusedRolloutAttrs } from '@piflow/policy-dx';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import {
  dot,
  fitsDispatch,
  loadFloats,
  makeProgram,
  range,
  runProgram,
  storeFloats,
  unroll,
} from './webgpu-program';

/** Largest N·C the fused DX kernel unrolls; bigger grids fall back to the op-by-op rollout. */
export const DX_MAX_UNROLLED = 2048;

/** vec4s per item in the DX table: the coefficient of x_start and the N grid coefficients, padded. */
export const dxTableRowSize = (N: number): number => Math.ceil((1 + N) / 4);

/**
 * WGSL for one invocation per position. A DX rollout is affine in x with coefficients shared by every position
 * of a batch item (`planDXRollout` of @piflow/policy-dx, accumulated in float64 over the op-by-op σ grid,
 * as the cpu/wasm kernel does): x_end = a·x_start + Σ_n c_n·X[n]. The kernel reads the item's row
 * [a, c_0 … c_{N−1}] (dxRolloutTable) and makes that one combination: N + 1 multiply-adds per value, however
 * many substeps the rollout has.
 */
export function dxRolloutShader(N: number, C: number): string {
  const rowSize = dxTableRowSize(N);
  const vec = C % 4 === 0;
  const coefficient = (e: number) => `row${Math.floor(e / 4)}.${'xyzw'[e % 4]}`;
  return `
fn main(index : i32) {
  if (index >= uniforms.numPositions) { return; }
  let P = uniforms.positionsPerItem;
  let b = index / P;
  let p = index - b * P;
${unroll(rowSize, (q) => `  let row${q} = tableIn[b * ${rowSize} + ${q}];`)}
  let xb = index * ${C};
${loadFloats('xIn', 'xb', C, (c) => `x${c}`, vec)}
${unroll(N, (n) => loadFloats('gridIn', `((b * ${N} + ${n}) * P + p) * ${C}`, C, (c) => `g${n}_${c}`, vec))}
${storeFloats(
  'xb',
  C,
  (c) =>
    dot(
      range(N, (n): [string, string] => [coefficient(1 + n), `g${n}_${c}`]),
      `${coefficient(0)} * x${c}`,
    ),
  vec,
)}
}
`;
}

/** The kernel's table, read as vec4s: per item one row [a, c_0 … c_{N−1}, 0…] of the plan (planDXRollout). */
export function dxRolloutTable(plan: { a: ArrayLike<number>; c: ArrayLike<number> }): Float32Array {
  const { a, c } = plan;
  const B = a.length;
  const N = c.length / B;
  const rowSize = dxTableRowSize(N);
  const table = new Float32Array(4 * rowSize * B);
  for (let b = 0; b < B; b++) {
    table[4 * rowSize * b] = a[b]!;
    for (let n = 0; n < N; n++) table[4 * rowSize * b + 1 + n] = c[b * N + n]!;
  }
  return table;
}

/**
 * The WebGPU kernel of @piflow/policy-dx's fused rollout (registered for 'webgpu' under its kernel name,
 * DX_FUSED_ROLLOUT_KERNEL): one dispatch. Takes the family's inputs (x [B, …positions, C], x0Grid
 * [B, N, …positions, C]; read flat) and attributes (the plan: a, c, numPoints), and builds its table
 * (dxRolloutTable) here. Throws FusedRolloutDeclined (the rollout then goes op by op) when N·C is too large to
 * unroll, x is empty, or there are too many positions for one dispatch. The output has x's shape.
 */
export function dxRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const plan = attrs as unknown as DXFusedRolloutAttrs;
  const { x, x0Grid } = inputs as Record<string, tf.TensorInfo>;
  const N = plan.numPoints;
  const C = x!.shape[x!.shape.length - 1]!;
  const size = tf.util.sizeFromShape(x!.shape);
  if (N * C > DX_MAX_UNROLLED) {
    throw new FusedRolloutDeclined(
      `N·C = ${N * C} is more than the WGSL kernel unrolls (${DX_MAX_UNROLLED}).`,
    );
  }
  if (size === 0) throw new FusedRolloutDeclined('x is empty.');
  const numPositions = size / C;
  if (!fitsDispatch(numPositions)) {
    throw new FusedRolloutDeclined(`${numPositions} positions are too many for one dispatch.`);
  }
  const positionsPerItem = numPositions / x!.shape[0]!;
  const be = backend as WebGPUBackend;
  const tableData = dxRolloutTable(plan);
  const table = be.makeTensorInfo([tableData.length], 'float32', tableData);
  const vec = C % 4 === 0 ? 4 : 1;
  const program = makeProgram({
    variableNames: ['xIn', 'gridIn', 'tableIn'],
    variableComponents: [vec, vec, 4],
    outputComponent: vec,
    outputShape: x!.shape,
    shaderKey: `piflowDXRollout_N${N}_C${C}`,
    numInvocations: numPositions,
    uniforms: 'numPositions : i32, positionsPerItem : i32,',
    body: () => dxRolloutShader(N, C),
  });
  try {
    return runProgram(
      backend,
      program,
      [x!, x0Grid!, table],
      [
        { type: 'int32', data: [numPositions] },
        { type: 'int32', data: [positionsPerItem] },
      ],
    );
  } finally {
    be.disposeData(table.dataId);
  }
}
