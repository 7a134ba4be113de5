import assert from 'node:assert/strict';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import tarStream, { type Header } from 'tar-stream';
import { KitError } from '../../../src/errors.js';
import { tempDir } from '../../helpers/tmp.js';

/** Helpers to craft tars (honest and hostile) and to check where extraction wrote. */

export type PackEntry = { header: Partial<Header> & { name: string }; body?: string | Buffer };

/** A tar built with tar-stream's packer: the way an attacker with ordinary tools would. */
export async function packTar(entries: PackEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const done = collect(pack as unknown as AsyncIterable<Buffer>);
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      const hasBody = e.header.type === undefined || e.header.type === 'file' || e.header.type === 'contiguous-file';
      // Bodiless entries (folders, links, devices) are complete as soon as they are added.
      if (hasBody) pack.entry(e.header, e.body ?? '', cb);
      else pack.entry(e.header, cb);
    });
  }
  pack.finalize();
  return done;
}

export async function collect(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/**
 * One raw ustar header block, for what tar-stream's packer cannot write: GNU long-name
 * ('L') records, unknown typeflags, sizes that disagree with the data.
 */
export function rawHeader(h: { name: string; typeflag: string; size?: number; mode?: number; linkname?: string }): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name.slice(0, 100), 0, 'utf8');
  b.write(`${(h.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 'ascii');
  b.write('0000000\0', 108, 'ascii');
  b.write('0000000\0', 116, 'ascii');
  b.write(`${(h.size ?? 0).toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  b.write('00000000000\0', 136, 'ascii');
  b.write(h.typeflag, 156, 'ascii');
  if (h.linkname) b.write(h.linkname, 157, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

/** Content padded to whole 512-byte blocks. */
export function blocks(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

export const END_OF_ARCHIVE = Buffer.alloc(1024);

/**
 * A GNU tar entry whose real name travels in a preceding '././@LongLink' record, as GNU tar
 * writes names over 100 bytes.
 */
export function gnuLongNameEntry(name: string, body: Buffer): Buffer {
  const nameData = Buffer.from(`${name}\0`, 'utf8');
  return Buffer.concat([
    rawHeader({ name: '././@LongLink', typeflag: 'L', size: nameData.length }),
    blocks(nameData),
    rawHeader({ name: name.slice(0, 99), typeflag: '0', size: body.length }),
    blocks(body),
  ]);
}

export interface Sandbox {
  root: string;
  dest: string;
  /** A sibling of dest that hostile entries aim at; it must stay empty. */
  sentinel: string;
}

export async function sandbox(): Promise<Sandbox> {
  const root = await tempDir('kit-layers-');
  const dest = join(root, 'dest');
  const sentinel = join(root, 'sentinel');
  await mkdir(dest);
  await mkdir(sentinel);
  return { root, dest, sentinel };
}

/** Nothing was created beside dest, in the sentinel folder, or left half-written in dest. */
export async function assertNothingOutside(s: Sandbox): Promise<void> {
  assert.deepEqual((await readdir(s.root)).sort(), ['dest', 'sentinel']);
  assert.deepEqual(await readdir(s.sentinel), []);
  assert.deepEqual(await partialFiles(s.dest), []);
}

/** Temp files the extractor left behind anywhere under `dir` (there must be none). */
export async function partialFiles(dir: string): Promise<string[]> {
  const all = await readdir(dir, { recursive: true });
  return all.filter((p) => p.split('/').pop()!.startsWith('.kit-partial-'));
}

export function readableOf(buf: Buffer, chunkSize = 64 * 1024): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  return Readable.from(chunks, { objectMode: false });
}

/** Await `p` and check it fails with a KitError of `code` (and, if given, a message part). */
export async function rejectsWithCode(p: Promise<unknown>, code: string, messagePart?: string): Promise<KitError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof KitError, `expected KitError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  if (messagePart !== undefined) assert.ok(caught.message.includes(messagePart), caught.message);
  return caught;
}

/** A Writable that keeps everything written to it. */
export class MemorySink extends Writable {
  private readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    cb();
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
