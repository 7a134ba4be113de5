import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXAMPLE, runKit } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

describe('kit processes sharing one store', () => {
  it('two packs and a tag running at once leave every tag and a whole index', async () => {
    const home = await tempDir();
    const first = await runKit(['pack', EXAMPLE, '-t', 'x.io/base/model:0'], { home });
    assert.equal(first.code, 0, first.stderr);
    const rounds = 4;
    const expected = new Set(['x.io/base/model:0']);
    for (let i = 1; i <= rounds; i++) {
      const runs = await Promise.all([
        runKit(['pack', EXAMPLE, '-t', `x.io/a/model:${i}`], { home }),
        runKit(['pack', EXAMPLE, '-t', `x.io/b/model:${i}`, '--compression', 'gzip', '--layer-format', 'tar'], { home }),
        runKit(['tag', 'x.io/base/model:0', `x.io/c/model:${i}`], { home }),
      ]);
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      for (const p of ['a', 'b', 'c']) expected.add(`x.io/${p}/model:${i}`);
    }
    const index = JSON.parse(await readFile(join(home, 'store', 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    const refs = new Set(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']));
    assert.deepEqual([...refs].sort(), [...expected].sort());
    const list = JSON.parse((await runKit(['list', '--json'], { home })).stdout) as unknown[];
    assert.equal(list.length, expected.size);
  });
});
