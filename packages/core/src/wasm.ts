/**
 * WebAssembly for piflow's own kernels: a minimal binary writer (kernels generated at run time) and the
 * thread pool they split their work over where a platform registers one.
 * @module @piflow/core/wasm
 */
export * from './wasm-assembler';
export * from './wasm-conv-filter-grad';
export * from './wasm-thread-pool';
