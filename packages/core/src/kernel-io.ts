import type * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';

/** What piflow's own cpu and wasm kernels (AdamW here, GroupNorm and SiLU in @piflow/models) use of a backend. */
export interface KernelBackend {
  // wasm
  makeOutput?(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap?(t: TensorInfo): Float32Array;
  disposeData?(dataId: object): boolean;
  wasm?: { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  // cpu
  data?: { get(dataId: object): { values: unknown } };
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Float32Array): TensorInfo;
}

export interface KernelIO {
  /**
   * Allocates float32 outputs; `views()` gives their arrays — on wasm, take them after every allocation of
   * the call (allocating may grow the heap and detach earlier views).
   */
  outputs(shapes: number[][]): { infos: TensorInfo[]; views: () => Float32Array[] };
  /** An input's values (on wasm a view of the heap: read it after the call's allocations). */
  read(info: TensorInfo): Float32Array;
  /** tfjs's wasm heap (its own memory, or the imported shared one of the threaded build); cpu: undefined. */
  memory?: WebAssembly.Memory;
  /** A float32 scratch tensor in the wasm heap (released by the caller with `release`); cpu: undefined. */
  scratch?(floats: number): TensorInfo;
  release?(info: TensorInfo): void;
}

/** Reads inputs and allocates outputs on the cpu or wasm backend. */
export function kernelIO(backend: KernelBackend): KernelIO {
  if (backend.makeOutput && backend.typedArrayFromHeap) {
    const memory = backend.wasm?.wasmMemory ?? backend.wasm?.asm?.memory;
    return {
      outputs(shapes) {
        // every output allocated before any view is taken
        const infos = shapes.map((shape) => backend.makeOutput!(shape, 'float32'));
        return { infos, views: () => infos.map((info) => backend.typedArrayFromHeap!(info)) };
      },
      read: (info) => backend.typedArrayFromHeap!(info),
      ...(memory && backend.disposeData
        ? {
            memory,
            scratch: (floats: number) => backend.makeOutput!([floats], 'float32'),
            release: (info: TensorInfo) => void backend.disposeData!(info.dataId),
          }
        : {}),
    };
  }
  return {
    outputs(shapes) {
      const arrays = shapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
      const infos = shapes.map((shape, i) => backend.makeTensorInfo!(shape, 'float32', arrays[i]!));
      return { infos, views: () => arrays };
    },
    read: (info) => backend.data!.get(info.dataId).values as Float32Array,
  };
}
