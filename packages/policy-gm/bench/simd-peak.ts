/**
 * Throughput probe for the arithmetic floor: a generated wasm SIMD loop of independent f32x4 multiply and
 * add chains (no memory traffic), i.e. the best rate at which this engine + CPU retire the instructions
 * the fused GM kernel is made of. Returns SIMD instructions per nanosecond (one core).
 */
import { assembleModule, FunctionBody, I32, Op, Simd, V128 } from '@piflow/core/wasm';

const CHAINS = 12;

function probeModule(): Uint8Array<ArrayBuffer> {
  const f = new FunctionBody([I32]);
  const acc = Array.from({ length: CHAINS }, () => f.local(V128));
  const a = f.local(V128);
  const b = f.local(V128);
  const i = f.local(I32);
  f.f32x4(0.999).set(a).f32x4(1e-3).set(b);
  for (const l of acc) f.f32x4(1).set(l);
  f.i32(0).set(i);
  f.op(Op.block, 0x40, Op.loop, 0x40);
  f.get(i).get(0).op(Op.i32GeU, Op.brIf, 1);
  for (const l of acc) f.get(l).get(a).simd(Simd.f32x4Mul).get(b).simd(Simd.f32x4Add).set(l);
  f.get(i).i32(1).op(Op.i32Add).set(i);
  f.op(Op.br, 0, Op.end, Op.end);
  // keep the results alive: store them
  for (const [k, l] of acc.entries())
    f.i32(k * 16)
      .get(l)
      .store128(0);
  return assembleModule([{ name: 'probe', body: f }]);
}

/** SIMD arithmetic instructions (f32x4 mul or add) retired per nanosecond, median of `runs`. */
export function simdInstructionsPerNanosecond(runs = 7): number {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(probeModule()), { env: { memory } });
  const probe = instance.exports.probe as (iterations: number) => void;
  const iterations = 2_000_000;
  for (let i = 0; i < 3; i++) probe(iterations); // tier up
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = process.cpuUsage();
    probe(iterations);
    const used = process.cpuUsage(start);
    const ns = (used.user + used.system) * 1000;
    rates.push((iterations * CHAINS * 2) / ns);
  }
  rates.sort((x, y) => x - y);
  return rates[Math.floor(runs / 2)]!;
}
