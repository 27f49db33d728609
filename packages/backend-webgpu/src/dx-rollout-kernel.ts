import { canFuseRollout, type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';
import type { DXPolicyState } from '@piflow/policy-dx';
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
  eps: number;
  [key: string]: number;
}

/** vec4s per substep row of the DX table: σ_j, σ_{j+1} − σ_j and the N weights, padded to whole vec4s. */
export const dxTableRowSize = (N: number): number => Math.ceil((2 + N) / 4);

/**
 * WGSL for one invocation per position: x (C values) and the position's N grid entries live in registers;
 * the loop walks the item's substeps (dxRolloutTable: one row of vec4 loads per substep) and applies
 * x ← x + (x − Σ_n w_n·X[n])/max(σ, eps)·Δσ, as DXPolicy.velocity does op by op.
 */
export function dxRolloutShader(N: number, C: number): string {
  const rowSize = dxTableRowSize(N);
  const vec = C % 4 === 0;
  const entry = (e: number) => `row${Math.floor(e / 4)}.${'xyzw'[e % 4]}`;
  return `
fn main(index : i32) {
  if (index >= uniforms.numPositions) { return; }
  let P = uniforms.positionsPerItem;
  let b = index / P;
  let p = index - b * P;
  let header = tableIn[b];
  let offset = i32(header.x);
  let count = i32(header.y);
  let xb = index * ${C};
${loadFloats('xIn', 'xb', C, (c) => `x0_${c}`, vec)}
${unroll(C, (c) => `  var x${c} = x0_${c};`)}
${unroll(N, (n) => loadFloats('gridIn', `((b * ${N} + ${n}) * P + p) * ${C}`, C, (c) => `g${n}_${c}`, vec))}
  for (var j = 0; j < count; j++) {
${unroll(rowSize, (q) => `    let row${q} = tableIn[offset + ${rowSize} * j + ${q}];`)}
    let h = ${entry(1)} / max(${entry(0)}, uniforms.eps);
${unroll(C, (c) => `    x${c} = fma(x${c} - ${dot(range(N, (n) => [entry(2 + n), `g${n}_${c}`]))}, h, x${c});`)}
  }
${storeFloats('xb', C, (c) => `x${c}`, vec)}
}
`;
}

/** The kernel: inputs x [P, C], grid [B·N·P/B, C] (the x0 grid, flattened), table. */
export function dxRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { numPoints: N, numChannels: C, positionsPerItem, eps } = attrs as unknown as DXRolloutAttrs;
  const { x, grid, table } = inputs as Record<string, tf.TensorInfo>;
  const numPositions = x!.shape[0]!;
  const vec = C % 4 === 0 ? 4 : 1;
  const program = makeProgram({
    variableNames: ['xIn', 'gridIn', 'tableIn'],
    variableComponents: [vec, vec, 4],
    outputComponent: vec,
    outputShape: [numPositions, C],
    shaderKey: `piflowDXRollout_N${N}_C${C}`,
    numInvocations: numPositions,
    uniforms: 'numPositions : i32, positionsPerItem : i32, eps : f32,',
    body: () => dxRolloutShader(N, C),
  });
  return runProgram(
    backend,
    program,
    [x!, grid!, table!],
    [
      { type: 'int32', data: [numPositions] },
      { type: 'int32', data: [positionsPerItem] },
      { type: 'float32', data: [eps] },
    ],
  );
}

/**
 * The kernel's table, read as vec4s: per item [offset of its first row (in vec4s), substep count, 0, 0], then
 * per item and substep a row of dxTableRowSize(N) vec4s [σ_j, σ_{j+1} − σ_j, w_0 … w_{N−1}, 0…] with the
 * weights from the policy's own `weightsAt` (so grid/polynomial mode, shift and clamping are the policy's).
 */
export function dxRolloutTable(policy: DXPolicyState, segment: RolloutSegment): Float32Array {
  const grids = rolloutSigmaGrid(segment);
  const B = grids.length;
  const N = policy.x0Grid.shape[1]!;
  const rowSize = dxTableRowSize(N);
  const maxSteps = Math.max(...grids.map((g) => g.length - 1));
  let rows = B;
  for (const g of grids) rows += rowSize * (g.length - 1);
  const table = new Float32Array(4 * rows);
  const offsets: number[] = [];
  let offset = B;
  grids.forEach((g, b) => {
    offsets.push(offset);
    table.set([offset, g.length - 1, 0, 0], 4 * b);
    offset += rowSize * (g.length - 1);
  });
  const sigma = new Float64Array(B);
  for (let j = 0; j < maxSteps; j++) {
    grids.forEach((g, b) => {
      sigma[b] = j < g.length - 1 ? g[j]! : g[g.length - 1]!;
    });
    const weights = policy.weightsAt(Float32Array.from(sigma));
    grids.forEach((g, b) => {
      if (j >= g.length - 1) return;
      const o = 4 * (offsets[b]! + rowSize * j);
      table[o] = g[j]!;
      table[o + 1] = g[j + 1]! - g[j]!;
      table.set(weights.subarray(b * N, (b + 1) * N), o + 2);
    });
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
  return tf.tidy(() => {
    const out = tf.engine().runKernel(
      DX_ROLLOUT_KERNEL,
      {
        x: tf.reshape(x, [numPositions, C]),
        grid: tf.reshape(policy.x0Grid, [N * numPositions, C]),
        table: tf.tensor1d(tableData),
      },
      { numPoints: N, numChannels: C, positionsPerItem: numPositions / B, eps: policy.eps },
    ) as tf.Tensor;
    return tf.reshape(out, x.shape);
  });
}
