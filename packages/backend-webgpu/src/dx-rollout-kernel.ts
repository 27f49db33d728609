import { canFuseRollout, type RolloutSegment } from '@piflow/core';
import { type DXPolicyState, planDXRollout } from '@piflow/policy-dx';
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

/** tfjs kernel name of the fused DX rollout (registered for the 'webgpu' backend). */
export const DX_ROLLOUT_KERNEL = 'PiflowDXRollout';

/** Largest N·C the fused DX kernel unrolls; bigger grids fall back to the op-by-op rollout. */
export const DX_MAX_UNROLLED = 2048;

export interface DXRolloutAttrs {
  numPoints: number;
  numChannels: number;
  positionsPerItem: number;
  [key: string]: number;
}

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

/** The kernel: inputs x [B, …positions, C], grid [B, N, …positions, C] (the x0 grid), table; read flat. */
export function dxRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { numPoints: N, numChannels: C, positionsPerItem } = attrs as unknown as DXRolloutAttrs;
  const { x, grid, table } = inputs as Record<string, tf.TensorInfo>;
  const numPositions = tf.util.sizeFromShape(x!.shape) / C;
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
  return runProgram(
    backend,
    program,
    [x!, grid!, table!],
    [
      { type: 'int32', data: [numPositions] },
      { type: 'int32', data: [positionsPerItem] },
    ],
  );
}

/** The kernel's table, read as vec4s: per item one row [a, c_0 … c_{N−1}, 0…] of planDXRollout. */
export function dxRolloutTable(policy: DXPolicyState, segment: RolloutSegment): Float32Array {
  const { a, c } = planDXRollout(policy, segment);
  const B = a.length;
  const N = c.length / B;
  const rowSize = dxTableRowSize(N);
  const table = new Float32Array(4 * rowSize * B);
  for (let b = 0; b < B; b++) {
    table[4 * rowSize * b] = a[b]!;
    table.set(c.subarray(b * N, (b + 1) * N), 4 * rowSize * b + 1);
  }
  return table;
}

/**
 * The hook registered with @piflow/policy-dx: runs the whole rollout as one WebGPU dispatch when the active
 * backend is 'webgpu', no gradient tape records, and N·C is small enough to unroll; else undefined.
 */
export function dxFusedRollout(
  policy: DXPolicyState,
  x: tf.Tensor,
  segment: RolloutSegment,
): tf.Tensor | undefined {
  if (!canFuseRollout(x, policy.xSrc, ['webgpu'])) return undefined;
  const C = x.shape[x.rank - 1]!;
  const N = policy.x0Grid.shape[1]!;
  if (N * C > DX_MAX_UNROLLED || x.size === 0) return undefined;
  const B = x.shape[0]!;
  const numPositions = x.size / C;
  if (!fitsDispatch(numPositions)) return undefined;
  const tableData = dxRolloutTable(policy, segment);
  // Flat indexing: the tensors go in as they are (no reshape ops); the output takes x's shape.
  return tf.tidy(
    () =>
      tf
        .engine()
        .runKernel(
          DX_ROLLOUT_KERNEL,
          { x, grid: policy.x0Grid, table: tf.tensor1d(tableData) },
          { numPoints: N, numChannels: C, positionsPerItem: numPositions / B },
        ) as tf.Tensor,
  );
}
