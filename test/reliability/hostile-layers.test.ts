/**
 * Issue 5, point 4, layers: every tar in fixtures/hostile/layers/ is put in an artifact and given
 * to the real CLI twice: `kit unpack` from the local store, and `kit unpack` straight from a real
 * registry (CNCF distribution, the artifact pushed raw by the harness's bare client, so no kit
 * code vetted it). Each time: one clear error, non-zero exit, nothing written outside the target,
 * the store unchanged.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { craftArtifact } from '../helpers/craft.js';
import { rawRegistryClient, registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import type { RegistryClient } from '../../src/registry/types.js';
import { CORPUS, expectRefusal, initStore, rawPushArtifact, workspace } from './helpers-faults/hostile.js';
import { checkCorpus } from './helpers-faults/make-hostile-corpus.js';

const registrySkip = await registrySkipReason();

/** The refusal each item must get (matched against kit's stderr). */
const EXPECTED: Record<string, RegExp> = {
  'dotdot.tar': /refusing layer entry .*'\.\.' component/,
  'absolute-path.tar': /refusing layer entry .*is absolute/,
  'symlink-escape.tar': /symlink data\/link -> \.\.\/\.\.\/outside: target leaves the destination/,
  'symlink-absolute.tar': /symlink data\/link -> \/etc: absolute target/,
  'symlink-then-file.tar': /symlink data\/link -> \.\.\/\.\.\/outside/,
  'symlink-inside-then-file.tar': /data\/alias\/planted: its parent data\/alias is a symlink/,
  'hardlink-escape.tar': /refusing layer entry .*'\.\.' component/,
  'hardlink-absolute.tar': /refusing layer entry .*\/etc\/passwd.*absolute/,
  'char-device.tar': /character-device entries are not allowed/,
  'block-device.tar': /block-device entries are not allowed/,
  'fifo.tar': /fifo entries are not allowed/,
  'duplicate-entry.tar': /data\/model\.bin: appears twice/,
  'absurd-size-octal.tar': /data\/huge\.bin: its header claims 8589934591 bytes, over the limit/,
  'absurd-size-base256.tar': /data\/huge\.bin: (invalid size|its header claims)/,
  'absurd-size-pax.tar': /data\/huge\.bin: (invalid size|its header claims)/,
  // Uncompressed, the blob's own size bounds the entry: 4096 bytes cannot fit in 2024.
  'truncated-mid-entry.tar': /data\/cut\.bin: its header claims 4096 bytes, over the limit of 2024/,
  'truncated-mid-entry.tar.gz': /layer is truncated: the tar ends in the middle of an entry/,
  'truncated-no-eof.tar': /layer is truncated: the tar ends without its end-of-archive marker/,
  'gzip-bomb.tar.gz': /data\/zeros\.bin: its header claims 100663296 bytes, over the limit of \d+/,
  'gzip-bomb-no-headers.tar.gz': /layer content is larger than the limit of \d+ bytes/,
};

function mediaTypeOf(file: string): string {
  return file.endsWith('.tar.gz') ? 'application/vnd.cncf.model.dataset.v1.tar+gzip' : 'application/vnd.cncf.model.dataset.v1.tar';
}

const ANNOTATIONS = { 'org.cncf.model.filepath': 'data' };

describe('hostile layers (fixtures/hostile/layers)', { concurrency: 3 }, () => {
  let items: string[] = [];
  let reg: RunningRegistry | undefined;
  let client: RegistryClient;

  before(async () => {
    items = (await readdir(join(CORPUS, 'layers'))).sort();
    if (!registrySkip) {
      reg = await startRegistry();
      client = rawRegistryClient(reg.url);
    }
  });
  after(async () => reg?.stop());

  it('the corpus, the README index and this table list the same items, and the generated files are current', async () => {
    assert.deepEqual(items, Object.keys(EXPECTED).sort());
    const readme = await readFile(join(CORPUS, 'README.md'), 'utf8');
    for (const item of items) assert.ok(readme.includes(`layers/${item}`), `README lists layers/${item}`);
    assert.deepEqual(await checkCorpus(), [], 'run node dist/test/reliability/helpers-faults/make-hostile-corpus.js');
  });

  for (const item of Object.keys(EXPECTED).sort()) {
    it(`${item}: refused by kit unpack from the local store`, async () => {
      const ws = await workspace();
      const bytes = await readFile(join(CORPUS, 'layers', item));
      await craftArtifact(join(ws.home, 'store'), 'hostile.example/layers/item:1', [{ mediaType: mediaTypeOf(item), content: bytes, annotations: ANNOTATIONS }]);
      await expectRefusal(ws, ['unpack', 'hostile.example/layers/item:1', '-d', ws.dest], EXPECTED[item]!, item);
      if (item.startsWith('gzip-bomb')) await assertBombStopped(ws.dest);
    });

    it(`${item}: refused by kit unpack straight from a registry`, { skip: registrySkip }, async () => {
      const ws = await workspace();
      const repo = `hostile/layers/${item.replace(/[^a-z0-9]+/g, '-')}`;
      const bytes = await readFile(join(CORPUS, 'layers', item));
      await rawPushArtifact(client, repo, '1', [{ mediaType: mediaTypeOf(item), bytes, annotations: ANNOTATIONS }]);
      await initStore(ws);
      await expectRefusal(ws, ['unpack', `${reg!.host}/${repo}:1`, '-d', ws.dest], EXPECTED[item]!, `${item} (registry)`);
      if (item.startsWith('gzip-bomb')) await assertBombStopped(ws.dest);
    });
  }
});

/** The bomb's 96 MiB never landed: no file of it in the target, partial or whole. */
async function assertBombStopped(dest: string): Promise<void> {
  let total = 0;
  for (const name of await readdir(dest, { recursive: true }).catch(() => [] as string[])) {
    const st = await stat(join(dest, String(name))).catch(() => undefined);
    if (st?.isFile()) total += st.size;
  }
  assert.equal(total, 0, `bytes of the bomb left in the target: ${total}`);
}
