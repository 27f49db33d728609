import { PiflowError } from '@piflow/core';

/** One tensor of a safetensors file, as float32 (other float dtypes are converted when read). */
export interface SafetensorsEntry {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  /** Tensors in the order of their data in the file. */
  tensors: SafetensorsEntry[];
  /** The `__metadata__` map (string → string). */
  metadata: Record<string, string>;
  /** Bytes before the tensor data: 8 (the header length) + the JSON header with its padding. */
  dataOffset: number;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/**
 * A safetensors file (the format of Hugging Face / PyTorch weights): an 8-byte little-endian header length,
 * a JSON header mapping each name to `{ dtype, shape, data_offsets }` (offsets relative to the data start)
 * plus an optional `__metadata__` of strings, then the little-endian tensor data. The header is padded with
 * spaces so the data starts at a multiple of 8 bytes (allowed by the format; it lets the data be read as
 * aligned float32 arrays). Tensors are written as F32 in the given order.
 */
export function encodeSafetensors(
  tensors: readonly SafetensorsEntry[],
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const size = t.shape.reduce((a, d) => a * d, 1);
    if (size !== t.data.length) {
      throw new PiflowError(
        `Tensor "${t.name}" has ${t.data.length} values but shape [${t.shape}] needs ${size}.`,
      );
    }
    if (t.name in header) throw new PiflowError(`Tensor name "${t.name}" appears twice.`);
    header[t.name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + 4 * size] };
    offset += 4 * size;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const padding = (8 - ((8 + headerBytes.length) % 8)) % 8;
  if (padding) {
    json += ' '.repeat(padding);
    headerBytes = encoder.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    // float32 little-endian: copy the bytes (typed arrays are little-endian on every platform tfjs runs on)
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/**
 * Reads a safetensors file written by any tool (PyTorch's `safetensors.torch.save_file`, ours): F32 tensors as
 * they are, F16, BF16 and F64 converted to float32. Other dtypes, overlapping or out-of-range offsets and a
 * malformed header throw naming what is wrong.
 */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.byteLength < 8) throw new PiflowError(`Not a safetensors file: ${bytes.byteLength} bytes.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.byteLength - 8) {
    throw new PiflowError(`Not a safetensors file: its header length ${headerLength} exceeds the file.`);
  }
  let header: Record<string, HeaderEntry | Record<string, string>>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new PiflowError(`Not a safetensors file: its header is not JSON (${(error as Error).message}).`);
  }
  const dataOffset = 8 + headerLength;
  const dataLength = bytes.byteLength - dataOffset;
  const { __metadata__: metadata = {}, ...entries } = header;
  const tensors = Object.entries(entries as Record<string, HeaderEntry>)
    .map(([name, entry]) => {
      const width = BYTES[entry?.dtype];
      if (!width) {
        throw new PiflowError(
          `Tensor "${name}" has dtype ${entry?.dtype}; piflow reads F32, F16, BF16 and F64.`,
        );
      }
      const [begin, end] = entry.data_offsets ?? [];
      const size = (entry.shape ?? []).reduce((a, d) => a * d, 1);
      if (
        !Number.isInteger(begin) ||
        !Number.isInteger(end) ||
        begin! < 0 ||
        end! > dataLength ||
        end! - begin! !== size * width
      ) {
        throw new PiflowError(
          `Tensor "${name}": data_offsets [${begin}, ${end}] do not hold ${size} ${entry.dtype} values within the ${dataLength} data bytes.`,
        );
      }
      return { name, entry, begin: begin!, size, width };
    })
    .sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < tensors.length; i++) {
    if (tensors[i]!.begin < tensors[i - 1]!.begin + tensors[i - 1]!.size * tensors[i - 1]!.width) {
      throw new PiflowError(`Tensors "${tensors[i - 1]!.name}" and "${tensors[i]!.name}" overlap.`);
    }
  }
  return {
    metadata: metadata as Record<string, string>,
    dataOffset,
    tensors: tensors.map(({ name, entry, begin, size }) => {
      const at = dataOffset + begin;
      if (entry.dtype === 'F32') {
        // a copy (aligned) of the little-endian bytes
        return {
          name,
          shape: [...entry.shape],
          data: new Float32Array(bytes.slice(at, at + 4 * size).buffer),
        };
      }
      const data = new Float32Array(size);
      for (let i = 0; i < size; i++) {
        if (entry.dtype === 'F64') data[i] = view.getFloat64(at + 8 * i, true);
        else if (entry.dtype === 'F16') data[i] = halfToFloat(view.getUint16(at + 2 * i, true));
        else data[i] = new Float32Array(new Uint32Array([view.getUint16(at + 2 * i, true) << 16]).buffer)[0]!;
      }
      return { name, shape: [...entry.shape], data };
    }),
  };
}
