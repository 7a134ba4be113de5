/**
 * ingestRanged against an in-memory source, for what no real registry here does on request:
 * pieces answered out of order, and a response destroyed without an error (the ranged-pull
 * integration test covers a real registry, Range refusals and dropped connections).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256 } from '../../../src/oci/digest.js';
import { ingestRanged } from '../../../src/store/ranged-ingest.js';
import { tempDir } from '../../helpers/tmp.js';

const MiB = 1024 * 1024;

/** Bytes [start, end) of `data` in 64 KiB chunks, each after `delayMs`. */
function body(data: Buffer, start: number, end: number, delayMs = 0): Readable {
  return Readable.from(
    (async function* () {
      for (let at = start; at < end; at += 64 * 1024) {
        if (delayMs) await sleep(delayMs);
        yield data.subarray(at, Math.min(end, at + 64 * 1024));
      }
    })(),
  );
}

describe('ingestRanged', () => {
  it('puts pieces that arrive out of order where they belong and verifies the whole', async () => {
    const data = randomBytes(13 * MiB + 4321);
    const path = join(await tempDir('kit-ranged-'), 'partial');
    const asked: number[] = [];
    const outcome = await ingestRanged({
      path,
      size: data.length,
      digest: sha256(data),
      what: 'test blob',
      // The first piece is the slowest: the later ones are held, then hashed in order.
      fetchRange: async (start, end) => {
        asked.push(start);
        return body(data, start, end, start === 0 ? 2 : 0);
      },
    });
    assert.deepEqual(outcome, { resumedFrom: 0 });
    assert.ok(asked.length >= 4, `four pieces or more were asked for: ${asked.join(', ')}`);
    assert.ok((await readFile(path)).equals(data));
    await assert.rejects(stat(`${path}.ranges`), /ENOENT/, 'the journal is gone');
  });

  it('asks again, from where it stopped, for a range whose response was destroyed without an error', { timeout: 30_000 }, async () => {
    const data = randomBytes(9 * MiB + 17);
    const path = join(await tempDir('kit-ranged-'), 'partial');
    const asked: Array<[number, number]> = [];
    let cut = false;
    await ingestRanged({
      path,
      size: data.length,
      digest: sha256(data),
      what: 'test blob',
      fetchRange: async (start, end) => {
        asked.push([start, end]);
        if (start !== 4 * MiB || cut) return body(data, start, end);
        // The second piece: 1 MiB, then destroyed with no error at all.
        cut = true;
        const r = new Readable({ read() {} });
        r.push(data.subarray(start, start + MiB));
        setTimeout(() => r.destroy(), 20);
        return r;
      },
    });
    assert.ok((await readFile(path)).equals(data));
    const again = asked.filter(([s]) => s > 4 * MiB && s < 8 * MiB);
    assert.deepEqual(again, [[5 * MiB, 8 * MiB]], `the rest of the cut piece was asked for once: ${JSON.stringify(asked)}`);
  });
});
