import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors } from './safetensors';

/** A safetensors file from parts, as another writer would lay it out (no padding). */
function file(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips float32 tensors with metadata; the data starts 8-byte aligned', () => {
    const tensors = [
      { name: 'a/kernel', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-7, -1e7]) },
      { name: 'a/bias', shape: [3], data: Float32Array.from([0.25, 0.5, 0.75]) },
      { name: 'scalar', shape: [], data: Float32Array.from([42]) },
    ];
    const bytes = encodeSafetensors(tensors, { format: 'piflow-model' });
    const decoded = decodeSafetensors(bytes);
    expect(decoded.dataOffset % 8).toBe(0);
    expect(decoded.metadata).toEqual({ format: 'piflow-model' });
    expect(decoded.tensors).toEqual(tensors);
    // the header as the format defines it
    const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
    expect(header['a/bias']).toEqual({ dtype: 'F32', shape: [3], data_offsets: [24, 36] });
  });

  it('reads F16, BF16 and F64 as float32, tensors in data order whatever the header order', () => {
    const f64 = new Float64Array([0.1, -3]);
    const f16 = Uint16Array.of(0x3c00, 0xc000, 0x3555); // 1, -2, ≈ 0.333
    const bf16 = Uint16Array.of(0x3f80, 0xc0a0); // 1, -5
    const data = new Uint8Array(16 + 6 + 4);
    data.set(new Uint8Array(f64.buffer), 0);
    data.set(new Uint8Array(f16.buffer), 16);
    data.set(new Uint8Array(bf16.buffer), 22);
    const decoded = decodeSafetensors(
      file(
        {
          c: { dtype: 'BF16', shape: [2], data_offsets: [22, 26] },
          a: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
          b: { dtype: 'F16', shape: [3], data_offsets: [16, 22] },
        },
        data,
      ),
    );
    expect(decoded.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c']);
    expect(Array.from(decoded.tensors[0]!.data)).toEqual([Math.fround(0.1), -3]);
    expect(decoded.tensors[1]!.data[0]).toBe(1);
    expect(decoded.tensors[1]!.data[1]).toBe(-2);
    expect(decoded.tensors[1]!.data[2]).toBeCloseTo(1 / 3, 3);
    expect(Array.from(decoded.tensors[2]!.data)).toEqual([1, -5]);
  });

  it('refuses malformed files, naming what is wrong', () => {
    const four = new Uint8Array(8);
    expect(() => decodeSafetensors(new Uint8Array(4))).toThrow(/Not a safetensors file: 4 bytes/);
    expect(() =>
      decodeSafetensors(file({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, four)),
    ).toThrow(/dtype I64/);
    expect(() =>
      decodeSafetensors(file({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }, four)),
    ).toThrow(/data_offsets \[0, 12\]/);
    expect(() =>
      decodeSafetensors(
        file(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          four,
        ),
      ),
    ).toThrow(/overlap/);
    const broken = file({}, four);
    broken[8] = 0x5b; // '[' … not the JSON object the format needs
    expect(() => decodeSafetensors(broken)).toThrow(/header/);
    expect(() => encodeSafetensors([{ name: 'x', shape: [2], data: new Float32Array(3) }])).toThrow(
      /needs 2/,
    );
  });
});
