import { InvalidArgumentError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/** Multiply-add work of the kernels a function ran, counted from their shapes. */
export interface FlopCount {
  /** Floating-point operations of the matrix products and convolutions (a multiply-add counts 2). */
  flops: number;
  /** The same, by kernel name. */
  byKernel: Record<string, number>;
  /** Kernels that ran and were not counted (element-wise, reductions, copies), by name, with their call counts. */
  uncounted: Record<string, number>;
}

const size = (shape: readonly number[] | undefined) => (shape ?? []).reduce((a, b) => a * b, 1);

/**
 * FLOPs of one kernel call from its input and output shapes, or undefined for kernels that are not products:
 * matMul 2·|a|·N (N the output's last axis, whatever the transposes), conv2d 2·|y|·kh·kw·Cin, and the two
 * conv2d gradients 2·|dy|·kh·kw·Cin.
 */
export function kernelFlops(
  name: string,
  inputShapes: readonly (readonly number[] | undefined)[],
  outputShapes: readonly (readonly number[] | undefined)[],
): number | undefined {
  const out = outputShapes[0];
  switch (name) {
    case 'BatchMatMul':
    case '_FusedMatMul': {
      const n = out?.[out.length - 1] ?? 0;
      return 2 * size(inputShapes[0]) * n;
    }
    case 'Conv2D':
    case 'FusedConv2D': {
      const [kh = 0, kw = 0, cin = 0] = inputShapes[1] ?? [];
      return 2 * size(out) * kh * kw * cin;
    }
    case 'Conv2DBackpropInput': {
      // inputs: dy, filter [kh, kw, Cin, Cout]
      const [kh = 0, kw = 0, cin = 0] = inputShapes[1] ?? [];
      return 2 * size(inputShapes[0]) * kh * kw * cin;
    }
    case 'Conv2DBackpropFilter': {
      // inputs: x, dy; output: the filter [kh, kw, Cin, Cout]
      const [kh = 0, kw = 0, cin = 0] = out ?? [];
      return 2 * size(inputShapes[1]) * kh * kw * cin;
    }
    default:
      return undefined;
  }
}

/**
 * Runs `fn` under `tf.profile` and counts the FLOPs of its matrix products and convolutions from the shapes the
 * kernels saw (forward and backward alike: wrap a `tf.variableGrads` call to count a training step). The
 * result of `fn` is disposed. Element-wise work is listed, not counted: "effective GFLOP/s" of a network are
 * these FLOPs over its wall time.
 */
export async function countFlops(
  fn: () => tf.TensorContainer | Promise<tf.TensorContainer>,
): Promise<FlopCount> {
  if (typeof fn !== 'function') {
    throw new InvalidArgumentError('fn', 'a function that runs tensor operations', typeof fn);
  }
  const profile = await tf.profile(async () => {
    const result = await fn();
    tf.dispose(result);
  });
  const byKernel: Record<string, number> = {};
  const uncounted: Record<string, number> = {};
  let flops = 0;
  for (const k of profile.kernels) {
    const f = kernelFlops(k.name, k.inputShapes, k.outputShapes);
    if (f === undefined) uncounted[k.name] = (uncounted[k.name] ?? 0) + 1;
    else {
      byKernel[k.name] = (byKernel[k.name] ?? 0) + f;
      flops += f;
    }
  }
  return { flops, byKernel, uncounted };
}
