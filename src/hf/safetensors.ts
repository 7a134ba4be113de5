/**
 * safetensors headers: what a weight file says about itself without reading its tensors.
 *
 * The format (huggingface/safetensors): 8 bytes, a little-endian unsigned 64-bit length N, then N
 * bytes of UTF-8 JSON mapping each tensor name to `{dtype, shape, data_offsets}`, plus an optional
 * `__metadata__` object of string values; the tensor data follows. Only the header is read here,
 * so a 10 GB shard costs one small read.
 */
import { open } from 'node:fs/promises';

/** Headers larger than this are refused (the reference implementation caps them at 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsTensor {
  dtype: string;
  shape: number[];
}

export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Parse the JSON part of a header (the bytes after the 8-byte length). */
export function parseSafetensorsHeaderJson(json: string): SafetensorsHeader {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new SafetensorsError('the header is not JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new SafetensorsError('the header is not a JSON object');
  const tensors = new Map<string, SafetensorsTensor>();
  const metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(value as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry && typeof entry === 'object' && !Array.isArray(entry)) {
        for (const [k, v] of Object.entries(entry as Record<string, unknown>)) if (typeof v === 'string') metadata[k] = v;
      }
      continue;
    }
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new SafetensorsError(`tensor ${JSON.stringify(name)} is not an object`);
    const { dtype, shape } = entry as { dtype?: unknown; shape?: unknown };
    if (typeof dtype !== 'string' || !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsError(`tensor ${JSON.stringify(name)} has no valid dtype and shape`);
    }
    tensors.set(name, { dtype, shape: shape as number[] });
  }
  return { tensors, metadata };
}

/** Parse a header from the first bytes of a file (at least 8 + N bytes of it). */
export function parseSafetensorsHeader(buf: Buffer): SafetensorsHeader {
  if (buf.length < 8) throw new SafetensorsError('shorter than the 8-byte header length');
  const n = buf.readBigUInt64LE(0);
  if (n < 2n || n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`implausible header length ${n}`);
  if (buf.length < 8 + Number(n)) throw new SafetensorsError('the header is cut short');
  return parseSafetensorsHeaderJson(buf.subarray(8, 8 + Number(n)).toString('utf8'));
}

/** Read and parse the header of a file on disk; only the header bytes are read. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const lenBuf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(lenBuf, 0, 8, 0);
    if (bytesRead < 8) throw new SafetensorsError('shorter than the 8-byte header length');
    const n = lenBuf.readBigUInt64LE(0);
    if (n < 2n || n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(size)) throw new SafetensorsError(`implausible header length ${n}`);
    const json = Buffer.alloc(Number(n));
    const r = await fh.read(json, 0, json.length, 8);
    if (r.bytesRead < json.length) throw new SafetensorsError('the header is cut short');
    return parseSafetensorsHeaderJson(json.toString('utf8'));
  } finally {
    await fh.close();
  }
}

/** Number of elements of a tensor (1 for a scalar). */
function elements(shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export interface WeightSummary {
  /** Total number of parameters (tensor elements). */
  parameters: number;
  /** Parameters per dtype as written in the header (`BF16`, `F32`, `I8`, ...). */
  byDtype: Map<string, number>;
}

/** Parameter count and dtype mix of one or more headers (the shards of one model). */
export function summarize(headers: SafetensorsHeader[]): WeightSummary {
  const byDtype = new Map<string, number>();
  let parameters = 0;
  for (const h of headers) {
    for (const t of h.tensors.values()) {
      const n = elements(t.shape);
      parameters += n;
      byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + n);
    }
  }
  return { parameters, byDtype };
}

const SCALES: Array<[number, string]> = [
  [1e15, 'Q'],
  [1e12, 'T'],
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'K'],
];

/**
 * A parameter count as model-spec's `paramSize`: `<count><scale>` with at most one decimal
 * (`7241732096` -> `7.2B`, `124439808` -> `124M`, `33000` -> `33K`). One decimal below 10 in the
 * chosen scale, none from 10 up, no trailing `.0`. Counts under a thousand are written in K
 * (the format has no unit-less form), never below `0.1K`.
 */
export function formatParamSize(count: number): string {
  if (!Number.isFinite(count) || count < 0) throw new RangeError(`not a parameter count: ${count}`);
  for (const [i, [scale, unit]] of SCALES.entries()) {
    if (count < scale && i < SCALES.length - 1) continue;
    const v = count / scale;
    const rounded = v < 10 ? Math.round(v * 10) / 10 : Math.round(v);
    // 999.6M rounds to 1000M: say 1B instead.
    if (rounded >= 1000 && i > 0) {
      const [upScale, upUnit] = SCALES[i - 1]!;
      return `${trim(Math.round((count / upScale) * 10) / 10)}${upUnit}`;
    }
    if (unit === 'K' && rounded < 0.1) return '0.1K';
    return `${trim(rounded)}${unit}`;
  }
  /* c8 ignore next */
  return `${count}`;
}

function trim(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/** safetensors dtype names -> the precision words model-spec uses. */
const PRECISION: Record<string, string> = {
  F64: 'fp64',
  F32: 'fp32',
  F16: 'fp16',
  BF16: 'bf16',
  F8_E4M3: 'fp8',
  F8_E5M2: 'fp8',
  F8_E8M0: 'fp8',
  F6_E2M3: 'fp6',
  F6_E3M2: 'fp6',
  F4: 'fp4',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U64: 'uint64',
  U32: 'uint32',
  U16: 'uint16',
  U8: 'uint8',
  BOOL: 'bool',
};

export function precisionOfDtype(dtype: string): string {
  return PRECISION[dtype.toUpperCase()] ?? dtype.toLowerCase();
}

/**
 * The precision of a model from its dtype mix: the dtype of (nearly) all parameters, or `mixed`.
 * A few norms kept in fp32 beside bf16 weights, or integer position buffers, do not make a
 * model mixed: one precision holding at least 99% of the parameters wins.
 */
export function precisionFromDtypes(byDtype: Map<string, number>): string | undefined {
  const byPrecision = new Map<string, number>();
  let total = 0;
  for (const [dtype, n] of byDtype) {
    const p = precisionOfDtype(dtype);
    byPrecision.set(p, (byPrecision.get(p) ?? 0) + n);
    total += n;
  }
  if (total === 0) return undefined;
  const [best, n] = [...byPrecision].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!;
  return n / total >= 0.99 ? best : 'mixed';
}
