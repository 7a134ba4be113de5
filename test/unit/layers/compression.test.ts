import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { compressor, decompressor, type Compression } from '../../../src/layers/compression.js';
import { collect, readableOf, rejectsWithCode } from './tar-fixtures.js';

async function squeeze(c: Compression, data: Buffer): Promise<Buffer> {
  const t = compressor(c);
  if (!t) return data;
  return collect(readableOf(data).pipe(t));
}

/** Pipe `data` through the capped decompressor; count what reached the far end. */
async function expand(c: 'none' | 'gzip' | 'zstd', data: Buffer, maxBytes?: number): Promise<{ out: number; err?: unknown }> {
  let out = 0;
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      out += chunk.length;
      cb();
    },
  });
  const d = decompressor(c, maxBytes === undefined ? {} : { maxBytes });
  try {
    await pipeline(d ? [readableOf(data), d, sink] : [readableOf(data), sink]);
    return { out };
  } catch (err) {
    return { out, err };
  }
}

const sample = Buffer.from('kit '.repeat(50_000));

describe('compressor', () => {
  it('writes a gzip header with MTIME 0 and OS byte 255 (unknown), at both levels', async () => {
    for (const c of ['gzip', 'gzip-fastest'] as const) {
      const gz = await squeeze(c, sample);
      assert.equal(gz[0], 0x1f);
      assert.equal(gz[1], 0x8b);
      assert.deepEqual([...gz.subarray(4, 8)], [0, 0, 0, 0], `${c} mtime`);
      assert.equal(gz[9], 255, `${c} OS byte`);
      assert.deepEqual(gunzipSync(gz), sample);
    }
  });

  it('uses level 6 for gzip and level 1 for gzip-fastest (the XFL byte and the size say so)', async () => {
    const normal = await squeeze('gzip', sample);
    const fastest = await squeeze('gzip-fastest', sample);
    assert.equal(fastest[8], 4, 'XFL 4 = fastest');
    assert.equal(normal[8], 0, 'XFL 0 = default levels');
    assert.deepEqual(normal.subarray(10), gzipSync(sample, { level: 6 }).subarray(10));
  });

  it('gives the same bytes for the same input, for every compression', async () => {
    for (const c of ['gzip', 'gzip-fastest', 'zstd'] as const) {
      assert.deepEqual(await squeeze(c, sample), await squeeze(c, sample), c);
    }
  });

  it('writes zstd that standard zstd reads back', async () => {
    const z = await squeeze('zstd', sample);
    assert.equal(z.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');
    const back = await expand('zstd', z);
    assert.equal(back.err, undefined);
    assert.equal(back.out, sample.length);
  });

  it("returns null for 'none'", () => {
    assert.equal(compressor('none'), null);
  });
});

describe('decompressor', () => {
  it('round-trips gzip and zstd under the cap', async () => {
    for (const c of ['gzip', 'zstd'] as const) {
      const r = await expand(c, await squeeze(c, sample), sample.length);
      assert.equal(r.err, undefined, c);
      assert.equal(r.out, sample.length, c);
    }
  });

  it('stops a gzip bomb as soon as it passes the cap, not after inflating it', async () => {
    const bomb = gzipSync(Buffer.alloc(64 << 20), { level: 9 }); // 64 MiB of zeros in ~64 KiB
    assert.ok(bomb.length < 128 * 1024);
    const max = 1 << 20;
    const r = await expand('gzip', bomb, max);
    await rejectsWithCode(Promise.reject(r.err), 'LAYER_TOO_LARGE');
    assert.ok(r.out <= max, `only ${r.out} bytes got through`);
  });

  it('stops a zstd bomb as soon as it passes the cap, even inside one input chunk', async () => {
    const bomb = zstdCompress(Buffer.alloc(256 << 20), { compressionLevel: 3 });
    assert.ok(bomb.length < 64 * 1024, `bomb is ${bomb.length} bytes: one input chunk`);
    const max = 1 << 20;
    const r = await expand('zstd', bomb, max);
    await rejectsWithCode(Promise.reject(r.err), 'LAYER_TOO_LARGE');
    assert.ok(r.out <= max, `only ${r.out} bytes got through`);
  });

  it('caps uncompressed content too', async () => {
    const r = await expand('none', sample, 1000);
    await rejectsWithCode(Promise.reject(r.err), 'LAYER_TOO_LARGE');
    assert.equal(decompressor('none', {}), null);
  });

  it('reports cut-off gzip and zstd as LAYER_TRUNCATED and garbage as LAYER_CORRUPT', async () => {
    const random = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
    const gz = await squeeze('gzip', random);
    const zs = await squeeze('zstd', random);
    await rejectsWithCode(Promise.reject((await expand('gzip', gz.subarray(0, gz.length / 2))).err), 'LAYER_TRUNCATED');
    await rejectsWithCode(Promise.reject((await expand('zstd', zs.subarray(0, zs.length / 2))).err), 'LAYER_TRUNCATED');
    await rejectsWithCode(Promise.reject((await expand('gzip', Buffer.from('not gzip at all'))).err), 'LAYER_CORRUPT');
    await rejectsWithCode(Promise.reject((await expand('zstd', Buffer.from('not zstd at all'))).err), 'LAYER_CORRUPT');
  });

  it('respects backpressure: a slow reader does not make the zstd decoder buffer everything', async () => {
    const z = zstdCompress(Buffer.alloc(64 << 20));
    let out = 0;
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _e, cb) {
        out += chunk.length;
        setImmediate(cb);
      },
    });
    const d = decompressor('zstd', {})!;
    let maxBuffered = 0;
    const probe = setInterval(() => (maxBuffered = Math.max(maxBuffered, d.readableLength)), 1);
    await pipeline(Readable.from([z]), d, slow);
    clearInterval(probe);
    assert.equal(out, 64 << 20);
    assert.ok(maxBuffered <= 1 << 20, `decoder buffered ${maxBuffered} bytes`);
  });
});
