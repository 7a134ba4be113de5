import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXAMPLE, runKit } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

async function ok(args: string[], home: string): Promise<string> {
  const r = await runKit(args, { home });
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

describe('kit diff', () => {
  it('reports shared layers, layers only in each, and the bytes a pull of B needs given A', async () => {
    const home = await tempDir();
    await ok(['pack', EXAMPLE, '-t', 'x.io/team/model:1'], home);
    const dir = join(await tempDir(), 'v2');
    await cp(EXAMPLE, dir, { recursive: true });
    const newWeights = Buffer.alloc(50_000, 7);
    await writeFile(join(dir, 'models', 'adapter.safetensors'), newWeights);
    await ok(['pack', dir, '-t', 'x.io/team/model:2'], home);

    const d = JSON.parse(await ok(['diff', 'x.io/team/model:1', 'local://x.io/team/model:2', '--json'], home)) as {
      identical: boolean;
      sameConfig: boolean;
      shared: Array<{ path: string }>;
      onlyInA: Array<{ path: string; size: number }>;
      onlyInB: Array<{ path: string; size: number }>;
      transferBytesForB: number;
      totalBytesB: number;
    };
    assert.equal(d.identical, false);
    assert.equal(d.sameConfig, false);
    assert.deepEqual(d.onlyInA.map((l) => l.path), ['models/adapter.safetensors']);
    assert.deepEqual(d.onlyInB.map((l) => [l.path, l.size]), [['models/adapter.safetensors', 50_000]]);
    assert.equal(d.shared.length, 9);
    // The new layer, plus B's own config and manifest.
    assert.ok(d.transferBytesForB > 50_000 && d.transferBytesForB < 50_000 + 10_000, String(d.transferBytesForB));
    assert.ok(d.totalBytesB > 150_000);

    const text = await ok(['diff', 'x.io/team/model:1', 'x.io/team/model:2'], home);
    assert.match(text, /Only in B \(1, 48\.8 KiB\):\n  models\/adapter\.safetensors/);
    assert.match(text, /Pulling B with A at hand transfers/);
    assert.match(await ok(['diff', 'x.io/team/model:1', 'x.io/team/model:1'], home), /identical/);
  });

  it('names a missing artifact', async () => {
    const r = await runKit(['diff', 'local://x.io/none/a:1', 'local://x.io/none/b:1'], { home: await tempDir() });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /x\.io\/none\/a:1/);
  });
});
