import { describe, expect, it } from 'vitest';
import { encodeNpy } from './npy';

describe('.npy encoding', () => {
  it('writes a v1.0 header padded to 64 bytes and little-endian float32 data', () => {
    const bytes = encodeNpy(Float32Array.of(1, 2, 3, 4, 5, 6), [3, 2]);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const headerLength = new DataView(bytes.buffer).getUint16(8, true);
    expect((10 + headerLength) % 64).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLength));
    expect(header).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(3, 2\), \} *\n$/);
    expect(Array.from(new Float32Array(bytes.slice(10 + headerLength).buffer))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new TextDecoder().decode(encodeNpy(Float32Array.of(1), [1]).subarray(10, 70))).toContain(
      "'shape': (1,)",
    );
  });
});
