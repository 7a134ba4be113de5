/**
 * Deterministic tar headers: ustar, plus a PAX extended header only when a value does not fit
 * (a long or non-ASCII path, a file of 8 GiB or more). Written here rather than with
 * tar-stream's packer so that every byte is decided by us: no defaults taken from the running
 * process, no uname/gname, no atime/ctime, the same PAX header name every time, and mtimes
 * past 2038 encoded correctly.
 */

export const BLOCK_SIZE = 512;

export interface HeaderFields {
  /** Normalised layer path, without the trailing '/' of directories (added here). */
  path: string;
  type: 'file' | 'directory';
  size: number;
  mode: number;
  mtime: Date;
}

const NAME_SIZE = 100;
const PREFIX_SIZE = 155;
/** Largest value of an 11-digit octal field (size, mtime): 8 GiB - 1. */
const MAX_OCTAL_11 = 0o77777777777;

const TYPEFLAG = { file: '0', directory: '5', pax: 'x' } as const;

/** Header block(s) for one entry: 512 bytes, or a PAX header + its records + 512 bytes. */
export function encodeEntryHeader(f: HeaderFields): Buffer {
  const name = f.type === 'directory' ? `${f.path}/` : f.path;
  const mtime = mtimeSeconds(f.mtime);
  const pax: Record<string, string> = {};

  let ustarName = name;
  let ustarPrefix = '';
  if (!fitsUstarName(name)) {
    const split = splitUstarPath(name);
    if (split) {
      [ustarPrefix, ustarName] = split;
    } else {
      pax.path = name;
      ustarName = asciiTruncated(name, NAME_SIZE);
    }
  }
  let ustarSize = f.size;
  if (f.size > MAX_OCTAL_11) {
    pax.size = String(f.size);
    ustarSize = 0;
  }

  const header = ustarBlock({
    name: ustarName,
    prefix: ustarPrefix,
    mode: f.mode,
    size: ustarSize,
    mtime,
    typeflag: TYPEFLAG[f.type],
  });
  if (Object.keys(pax).length === 0) return header;
  return Buffer.concat([paxHeader(name, pax, mtime), header]);
}

/** Zero bytes to pad `size` bytes of content to a whole block. */
export function paddingFor(size: number): Buffer | null {
  const rest = size % BLOCK_SIZE;
  return rest === 0 ? null : Buffer.alloc(BLOCK_SIZE - rest);
}

/** The end-of-archive marker: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK_SIZE);
}

interface UstarFields {
  name: string;
  prefix: string;
  mode: number;
  size: number;
  mtime: number;
  typeflag: string;
}

function ustarBlock(u: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.write(u.name, 0, NAME_SIZE, 'utf8');
  writeOctal(b, 100, 8, u.mode & 0o7777);
  writeOctal(b, 108, 8, 0); // uid
  writeOctal(b, 116, 8, 0); // gid
  writeOctal(b, 124, 12, u.size);
  writeOctal(b, 136, 12, u.mtime);
  b.write(u.typeflag, 156, 1, 'ascii');
  // linkname (157..256) stays empty: we write no links.
  b.write('ustar\0', 257, 6, 'ascii');
  b.write('00', 263, 2, 'ascii');
  // uname (265) and gname (297) stay empty: ownership is not part of the content.
  writeOctal(b, 329, 8, 0); // devmajor
  writeOctal(b, 337, 8, 0); // devminor
  b.write(u.prefix, 345, PREFIX_SIZE, 'utf8');
  writeChecksum(b);
  return b;
}

/**
 * A PAX 'x' header carrying `records` for the entry that follows. Its own name is fixed
 * (as Go's archive/tar does) instead of GNU tar's pid-based one, so it is reproducible.
 */
function paxHeader(entryName: string, records: Record<string, string>, mtime: number): Buffer {
  const body = Buffer.from(
    Object.keys(records)
      .sort()
      .map((k) => paxRecord(k, records[k] as string))
      .join(''),
    'utf8',
  );
  const base = entryName.replace(/\/$/, '').split('/').pop() ?? '';
  const header = ustarBlock({
    name: asciiTruncated(`PaxHeaders.0/${base}`, NAME_SIZE),
    prefix: '',
    mode: 0o644,
    size: body.length,
    mtime,
    typeflag: TYPEFLAG.pax,
  });
  const pad = paddingFor(body.length);
  return Buffer.concat(pad ? [header, body, pad] : [header, body]);
}

/** `"%d %s=%s\n"` where the leading length counts the whole record, itself included. */
function paxRecord(key: string, value: string): string {
  const payload = ` ${key}=${value}\n`;
  const payloadBytes = Buffer.byteLength(payload, 'utf8');
  let len = payloadBytes + String(payloadBytes).length;
  if (String(len).length + payloadBytes !== len) len = String(len).length + payloadBytes;
  return `${len}${payload}`;
}

function fitsUstarName(name: string): boolean {
  return isAscii(name) && name.length <= NAME_SIZE;
}

/** Split a long ASCII path at a '/' into ustar prefix (<= 155) and name (<= 100). */
function splitUstarPath(name: string): [string, string] | null {
  if (!isAscii(name)) return null;
  // The split '/' must sit within the first 156 characters; never split off the trailing
  // '/' of a directory name.
  let limit = Math.min(name.length, PREFIX_SIZE + 1);
  if (limit === name.length && name.endsWith('/')) limit--;
  const i = name.lastIndexOf('/', limit - 1);
  if (i <= 0) return null;
  const prefix = name.slice(0, i);
  const rest = name.slice(i + 1);
  if (rest.length === 0 || rest.length > NAME_SIZE || prefix.length > PREFIX_SIZE) return null;
  return [prefix, rest];
}

function isAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(s);
}

/** The ustar fallback name when PAX carries the real one: ASCII only, cut to fit. */
function asciiTruncated(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(0, max);
}

/** Seconds since the epoch, clamped to what an 11-digit octal field holds. */
function mtimeSeconds(d: Date): number {
  const s = Math.floor(d.getTime() / 1000);
  if (!Number.isFinite(s) || s < 0) return 0;
  return Math.min(s, MAX_OCTAL_11);
}

/** Zero-padded octal, NUL-terminated, filling `width` bytes (as GNU tar and Go write it). */
function writeOctal(b: Buffer, offset: number, width: number, value: number): void {
  const digits = value.toString(8).padStart(width - 1, '0');
  b.write(`${digits}\0`, offset, width, 'ascii');
}

/** Sum of all header bytes with the checksum field read as spaces; 6 octal digits, NUL, space. */
function writeChecksum(b: Buffer): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
}
