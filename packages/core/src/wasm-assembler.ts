/**
 * A minimal WebAssembly binary writer: just enough of the format (types, one imported memory, functions,
 * exports; i32/f32/v128 locals; the SIMD opcodes piflow's kernels use) to generate specialised kernels at run
 * time from our own code (the fused GM rollout of @piflow/policy-gm, the GroupNorm kernels of @piflow/models).
 * Encodings follow the WebAssembly core spec (binary format, §5) and the fixed-width SIMD proposal (opcodes
 * after the 0xfd prefix).
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof F32 | typeof V128;

/** SIMD opcodes (after the 0xfd prefix). */
export const Simd = {
  v128Load: 0x00,
  v128Load32Splat: 0x09,
  v128Store: 0x0b,
  v128Const: 0x0c,
  f32x4Splat: 0x13,
  f32x4Gt: 0x44,
  v128And: 0x4e,
  f32x4Nearest: 0x6a,
  i32x4Shl: 0xab,
  i32x4Add: 0xae,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
  f32x4Mul: 0xe6,
  f32x4Div: 0xe7,
  f32x4Min: 0xe8,
  f32x4Max: 0xe9,
  i32x4TruncSatF32x4S: 0xf8,
} as const;

/** Core opcodes. */
export const Op = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  call: 0x10,
  select: 0x1b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i32Load: 0x28,
  f32Load: 0x2a,
  f32Store: 0x38,
  i32Const: 0x41,
  f32Const: 0x43,
  i32LtS: 0x48,
  i32GtS: 0x4a,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32ShrU: 0x76,
} as const;

function unsignedLEB(value: number, out: number[]): void {
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
}

function signedLEB(value: number, out: number[]): void {
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return;
    }
    out.push(byte | 0x80);
  }
}

const f32Scratch = new DataView(new ArrayBuffer(4));

/** The body of one function: declare locals, then emit instructions. */
export class FunctionBody {
  readonly code: number[] = [];
  private readonly localTypes: ValueType[] = [];

  constructor(readonly params: readonly ValueType[]) {}

  /** Declares a local of the given type and returns its index. */
  local(type: ValueType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  simd(opcode: number): this {
    this.code.push(0xfd);
    unsignedLEB(opcode, this.code);
    return this;
  }

  get(index: number): this {
    this.code.push(Op.localGet);
    unsignedLEB(index, this.code);
    return this;
  }

  set(index: number): this {
    this.code.push(Op.localSet);
    unsignedLEB(index, this.code);
    return this;
  }

  tee(index: number): this {
    this.code.push(Op.localTee);
    unsignedLEB(index, this.code);
    return this;
  }

  i32(value: number): this {
    this.code.push(Op.i32Const);
    signedLEB(value, this.code);
    return this;
  }

  f32(value: number): this {
    this.code.push(Op.f32Const);
    f32Scratch.setFloat32(0, value, true);
    for (let i = 0; i < 4; i++) this.code.push(f32Scratch.getUint8(i));
    return this;
  }

  /** v128.const with four f32 lanes equal to `value`. */
  f32x4(value: number): this {
    this.simd(Simd.v128Const);
    f32Scratch.setFloat32(0, value, true);
    for (let lane = 0; lane < 4; lane++) for (let i = 0; i < 4; i++) this.code.push(f32Scratch.getUint8(i));
    return this;
  }

  /** v128.const with four i32 lanes equal to `value`. */
  i32x4(value: number): this {
    this.simd(Simd.v128Const);
    f32Scratch.setInt32(0, value, true);
    for (let lane = 0; lane < 4; lane++) for (let i = 0; i < 4; i++) this.code.push(f32Scratch.getUint8(i));
    return this;
  }

  private memarg(alignLog2: number, offset: number): void {
    unsignedLEB(alignLog2, this.code);
    unsignedLEB(offset, this.code);
  }

  /** v128.load at address (on the stack) + offset bytes. */
  load128(offset: number): this {
    this.simd(Simd.v128Load);
    this.memarg(4, offset);
    return this;
  }

  /** v128.store of (address, value) on the stack at address + offset bytes. */
  store128(offset: number): this {
    this.simd(Simd.v128Store);
    this.memarg(4, offset);
    return this;
  }

  /** v128.load32_splat: the f32 at address (on the stack) + offset bytes in all four lanes. */
  loadSplat32(offset: number): this {
    this.simd(Simd.v128Load32Splat);
    this.memarg(2, offset);
    return this;
  }

  loadF32(offset: number): this {
    this.code.push(Op.f32Load);
    this.memarg(2, offset);
    return this;
  }

  /** f32.store of (address, value) on the stack at address + offset bytes. */
  storeF32(offset: number): this {
    this.code.push(Op.f32Store);
    this.memarg(2, offset);
    return this;
  }

  loadI32(offset: number): this {
    this.code.push(Op.i32Load);
    this.memarg(2, offset);
    return this;
  }

  /** Calls function `index` of the module (its arguments on the stack). */
  call(index: number): this {
    this.code.push(Op.call);
    unsignedLEB(index, this.code);
    return this;
  }

  /**
   * Emits `for (i = 0; i < limit; i += step) { body(i); p += stride for each [p, stride] of pointers }`, with
   * `limit` a local (or parameter) holding the bound, compared unsigned; `body` gets the counter's local.
   */
  countedLoop(
    limit: number,
    body: (counter: number) => void,
    options: { pointers?: ReadonlyArray<readonly [local: number, stride: number]>; step?: number } = {},
  ): this {
    const { pointers = [], step = 1 } = options;
    const i = this.local(I32);
    this.i32(0).set(i);
    this.op(Op.block, 0x40, Op.loop, 0x40);
    this.get(i).get(limit).op(Op.i32GeU, Op.brIf, 1);
    body(i);
    for (const [p, stride] of pointers) this.get(p).i32(stride).op(Op.i32Add).set(p);
    this.get(i).i32(step).op(Op.i32Add).set(i);
    return this.op(Op.br, 0, Op.end, Op.end);
  }

  encode(): number[] {
    const out: number[] = [];
    // run-length encode the locals' types
    const groups: [number, ValueType][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    unsignedLEB(groups.length, out);
    for (const [count, type] of groups) {
      unsignedLEB(count, out);
      out.push(type);
    }
    const body = out.concat(this.code, [Op.end]);
    const sized: number[] = [];
    unsignedLEB(body.length, sized);
    return sized.concat(body);
  }
}

function section(id: number, payload: number[]): number[] {
  const out = [id];
  unsignedLEB(payload.length, out);
  return out.concat(payload);
}

function name(text: string, out: number[]): void {
  const bytes = new TextEncoder().encode(text);
  unsignedLEB(bytes.length, out);
  out.push(...bytes);
}

/** The largest memory a wasm32 module addresses, in 64 KiB pages (4 GiB). */
const MAX_PAGES = 65536;

/**
 * Assembles a module that imports its memory as env.memory and exports the given functions (no results).
 * With `sharedMemory`, the import is a shared memory (as a threaded wasm program's, e.g. tfjs's threaded
 * backend), which the module can then work in directly.
 */
export function assembleModule(
  functions: { name: string; body: FunctionBody }[],
  options: { sharedMemory?: boolean } = {},
): Uint8Array<ArrayBuffer> {
  const types: number[] = [];
  unsignedLEB(functions.length, types);
  for (const { body } of functions) {
    types.push(0x60);
    unsignedLEB(body.params.length, types);
    types.push(...body.params);
    types.push(0); // no results
  }
  const imports: number[] = [1];
  name('env', imports);
  name('memory', imports);
  if (options.sharedMemory) {
    imports.push(0x02, 0x03, 0x01); // memory, limits {min: 1, max, shared}
    unsignedLEB(MAX_PAGES, imports);
  } else {
    imports.push(0x02, 0x00, 0x01); // memory, limits {min: 1}
  }
  const funcs: number[] = [];
  unsignedLEB(functions.length, funcs);
  functions.forEach((_, i) => unsignedLEB(i, funcs));
  const exports: number[] = [];
  unsignedLEB(functions.length, exports);
  functions.forEach((f, i) => {
    name(f.name, exports);
    exports.push(0x00);
    unsignedLEB(i, exports);
  });
  let code: number[] = [];
  unsignedLEB(functions.length, code);
  for (const { body } of functions) code = code.concat(body.encode());
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  return Uint8Array.from(
    header.concat(
      section(1, types),
      section(2, imports),
      section(3, funcs),
      section(7, exports),
      section(10, code),
    ),
  );
}
