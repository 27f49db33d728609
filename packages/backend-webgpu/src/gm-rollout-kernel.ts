import { canFuseRollout, type RolloutSegment, rolloutSigmaGrid } from '@piflow/core';
import type { GMPolicyState } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { makeProgram, nestedMax, runProgram, unroll } from './webgpu-program';

/** tfjs kernel name of the fused GM rollout (registered for the 'webgpu' backend). */
export const GM_ROLLOUT_KERNEL = 'PiflowGMRollout';

/** Largest K·C the fused GM kernel unrolls; bigger mixtures fall back to the op-by-op rollout. */
export const GM_MAX_UNROLLED = 2048;

export interface GMRolloutAttrs {
  numComponents: number;
  numChannels: number;
  positionsPerItem: number;
  [key: string]: number;
}

/**
 * WGSL for one invocation per position: the position's x (C values), x_src, K means, |μ_k|²/2 and
 * log-weights live in registers; the loop walks the item's σ grid (table: per item [σ_src, offset, count, ·],
 * then [σ_j, σ_{j+1} − σ_j] pairs) and applies every Euler substep of the GMFlow-posterior velocity, written
 * term for term as GMPolicy.velocity computes it op by op.
 */
export function gmRolloutShader(K: number, C: number): string {
  const KC = K * C;
  const m = (k: number, c: number) => `m${k}_${c}`;
  return `
fn main(index : i32) {
  if (index >= uniforms.numPositions) { return; }
  let b = index / uniforms.positionsPerItem;
  let ss = tableIn[b * 4];
  let offset = i32(tableIn[b * 4 + 1]);
  let count = i32(tableIn[b * 4 + 2]);
  let v = varianceIn[b];
  let as_ = 1.0 - ss;
  let ss2 = ss * ss;
  let xb = index * ${C};
  let mb = index * ${KC};
  let lb = index * ${K};
${unroll(C, (c) => `  var x${c} = xIn[xb + ${c}];\n  let xs${c} = xSrcIn[xb + ${c}];`)}
${unroll(K, (k) => unroll(C, (c) => `  let ${m(k, c)} = meansIn[mb + ${k * C + c}];`))}
${unroll(K, (k) => `  let n${k} = ${unroll(C, (c) => `${m(k, c)} * ${m(k, c)}`, ' + ')};`)}
${unroll(K, (k) => `  let lw${k}raw = logwIn[lb + ${k}];\n  let lw${k} = select(lw${k}raw, -1e30, lw${k}raw < -1e30);`)}
  for (var j = 0; j < count; j++) {
    let s = tableIn[offset + 2 * j];
    let delta = tableIn[offset + 2 * j + 1];
    let a = 1.0 - s;
    let rho = s / ss;
    let rho2 = rho * rho;
    let zeta = a * a - rho2 * (as_ * as_);
    let rs = rho2 * as_;
    let d = max(v * zeta + s * s, 1e-20);
    let invD = 1.0 / d;
    let hz = 0.5 * zeta;
${unroll(C, (c) => `    let nu${c} = a * x${c} - rs * xs${c};`)}
${unroll(K, (k) => `    let l${k} = lw${k} + (${unroll(C, (c) => `${m(k, c)} * nu${c}`, ' + ')} - hz * n${k}) * invD;`)}
    let mx = ${nestedMax(K, 'l')};
${unroll(K, (k) => `    let e${k} = exp(l${k} - mx);`)}
    let inv = 1.0 / (${unroll(K, (k) => `e${k}`, ' + ')});
${unroll(C, (c) => `    let mbar${c} = (${unroll(K, (k) => `e${k} * ${m(k, c)}`, ' + ')}) * inv;`)}
    let va = v * a;
    let st = (v * s * as_) / ss2;
${unroll(C, (c) => `    x${c} = x${c} + ((s * (x${c} - mbar${c}) - va * x${c} - st * (as_ * x${c} - xs${c})) * invD) * delta;`)}
  }
${unroll(C, (c) => `  result[xb + ${c}] = x${c};`)}
}
`;
}

/** The kernel: inputs x [P, C], xSrc [P, C], means [P, K·C], logweights [P, K], variance [B], table. */
export function gmRolloutKernelFunc({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { numComponents: K, numChannels: C, positionsPerItem } = attrs as unknown as GMRolloutAttrs;
  const { x, xSrc, means, logweights, variance, table } = inputs as Record<string, tf.TensorInfo>;
  const numPositions = x!.shape[0]!;
  const program = makeProgram({
    variableNames: ['xIn', 'xSrcIn', 'meansIn', 'logwIn', 'varianceIn', 'tableIn'],
    outputShape: [numPositions, C],
    shaderKey: `piflowGMRollout_K${K}_C${C}`,
    numInvocations: numPositions,
    uniforms: 'numPositions : i32, positionsPerItem : i32,',
    body: gmRolloutShader(K, C),
  });
  return runProgram(
    backend,
    program,
    [x!, xSrc!, means!, logweights!, variance!, table!],
    [
      { type: 'int32', data: [numPositions] },
      { type: 'int32', data: [positionsPerItem] },
    ],
  );
}

/** Per item [σ_src, offset, count, 0], then per item its substeps as [σ_j, σ_{j+1} − σ_j]. */
export function gmRolloutTable(sigmaSrc: Float32Array, segment: RolloutSegment): Float32Array {
  const grids = rolloutSigmaGrid(segment);
  const B = grids.length;
  let size = 4 * B;
  for (const g of grids) size += 2 * (g.length - 1);
  const table = new Float32Array(size);
  let offset = 4 * B;
  grids.forEach((g, b) => {
    const n = g.length - 1;
    table.set([sigmaSrc[b]!, offset, n, 0], 4 * b);
    for (let j = 0; j < n; j++) {
      table[offset + 2 * j] = g[j]!;
      table[offset + 2 * j + 1] = g[j + 1]! - g[j]!;
    }
    offset += 2 * n;
  });
  return table;
}

/**
 * The hook registered with @piflow/policy-gm: runs the whole rollout as one WebGPU dispatch when the active
 * backend is 'webgpu', no gradient tape records, and the mixture is small enough to unroll; else undefined.
 */
export function gmFusedRollout(
  policy: GMPolicyState,
  x: tf.Tensor,
  segment: RolloutSegment,
): tf.Tensor | undefined {
  if (!canFuseRollout(x, policy.xSrc, ['webgpu'])) return undefined;
  const C = x.shape[x.rank - 1]!;
  const K = policy.means.shape[policy.means.rank - 2]!;
  if (K * C > GM_MAX_UNROLLED || x.size === 0) return undefined;
  const B = x.shape[0]!;
  const numPositions = x.size / C;
  const tableData = gmRolloutTable(policy.sigmaSrc, segment);
  return tf.tidy(() => {
    const out = tf.engine().runKernel(
      GM_ROLLOUT_KERNEL,
      {
        x: tf.reshape(x, [numPositions, C]),
        xSrc: tf.reshape(policy.xSrc, [numPositions, C]),
        means: tf.reshape(policy.means, [numPositions, K * C]),
        logweights: tf.reshape(policy.logweights, [numPositions, K]),
        variance: policy.variance,
        table: tf.tensor1d(tableData),
      },
      { numComponents: K, numChannels: C, positionsPerItem: numPositions / B },
    ) as tf.Tensor;
    return tf.reshape(out, x.shape);
  });
}
