import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Encodes float32 values as a NumPy .npy file (format 1.0, little-endian, C order). */
export function encodeNpy(values: Float32Array, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64);
  header += '\n';
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0); // \x93NUMPY v1.0
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 10 + header.length);
  return out;
}

export async function writeNpy(file: string, values: Float32Array, shape: readonly number[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, encodeNpy(values, shape));
}
