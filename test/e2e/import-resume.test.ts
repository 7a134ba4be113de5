/**
 * A `kit import` killed mid-download resumes where it stopped: the fake CDN (standing for the
 * Hub's CDN behind `resolve` redirects) stalls after 1 MiB of a 4 MiB file, the CLI is killed
 * with SIGKILL, and the next run asks for the rest with `Range: bytes=1048576-`. A CDN that
 * answers the Range request with 200 (the whole file) is handled too: the download starts over.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KIT_BIN, REPO_ROOT, runKit } from '../helpers/cli.js';
import { FakeHub, fakeCommit, hubEnv, importKit, sha256Hex, type FakeFile } from '../helpers/fake-hub.js';
import { tempDir } from '../helpers/tmp.js';

const COMMIT = fakeCommit('big-v1');
const MiB = 1024 * 1024;

function bigContent(): Buffer {
  // 4 MiB that do not compress to nothing and differ at every offset.
  const out = Buffer.alloc(4 * MiB);
  let block = createHash('sha256').update('seed').digest();
  for (let off = 0; off < out.length; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

const FILES: FakeFile[] = [
  { path: 'README.md', content: Buffer.from('# big\n') },
  { path: 'weights/model.safetensors', content: bigContent(), lfs: true },
];

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Start an import, wait until 1 MiB of the big file is on disk, and SIGKILL it. */
async function importAndKill(hub: FakeHub, home: string, env: Record<string, string>): Promise<string> {
  hub.cdn = { stallAfter: MiB };
  const partial = join(home, 'hf-cache', 'models', 'test-org', 'big', COMMIT, 'partial', 'weights', 'model.safetensors.part');
  const child = spawn(process.execPath, [KIT_BIN, 'import', 'test-org/big', '-t', 'x.io/big/model:1'], {
    cwd: REPO_ROOT,
    env: { ...process.env, KIT_HOME: home, CI: '1', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitFor('1 MiB in the partial file', async () => (await sizeOf(partial)) >= MiB);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${stderr}`);
  }
  child.kill('SIGKILL');
  assert.equal(await exited, null, 'killed, not exited');
  assert.equal(await sizeOf(partial), MiB);
  hub.cdn = {};
  return partial;
}

describe('a killed kit import resumes (a fake Hub and CDN standing for huggingface.co)', () => {
  let hub: FakeHub;
  before(async () => {
    hub = await FakeHub.start({ repos: [{ type: 'model', id: 'test-org/big', refs: { main: COMMIT }, commits: { [COMMIT]: FILES } }] });
  });
  after(() => hub.close());

  it('asks for the rest with Range after SIGKILL and packs the exact bytes', async () => {
    const home = await tempDir();
    const env = await hubEnv(hub.url);
    await importAndKill(hub, home, env);
    const before = hub.cdnRequests().length;

    const r = await importKit(['test-org/big', '-t', 'x.io/big/model:1'], home, env);
    assert.equal(r.code, 0, r.stderr);
    const resumed = hub.cdnRequests().slice(before);
    assert.deepEqual(resumed.map((q) => q.range), [`bytes=${MiB}-`], 'one request, for the missing bytes only');
    assert.equal(hub.cdnSent.get('weights/model.safetensors'), MiB + 3 * MiB, '4 MiB sent in all: nothing twice');
    assert.match(r.stderr, /weights\/model\.safetensors copied \(resumed at 1\.00 MiB\) 4\.00 MiB/);

    const out = join(await tempDir(), 'out');
    assert.equal((await runKit(['unpack', 'x.io/big/model:1', '-d', out], { home })).code, 0);
    assert.equal(sha256Hex(await readFile(join(out, 'weights', 'model.safetensors'))), sha256Hex(FILES[1]!.content));
  });

  it('starts over when the CDN answers the Range request with 200, and still packs the exact bytes', async () => {
    const home = await tempDir();
    const env = await hubEnv(hub.url);
    hub.cdnSent.clear();
    await importAndKill(hub, home, env);
    const before = hub.cdnRequests().length;
    hub.cdn = { ignoreRange: true };
    try {
      const r = await importKit(['test-org/big', '-t', 'x.io/big/model:1', '-v'], home, env);
      assert.equal(r.code, 0, r.stderr);
      const again = hub.cdnRequests().slice(before);
      assert.deepEqual(again.map((q) => q.range), [`bytes=${MiB}-`]);
      assert.match(r.stderr, /weights\/model\.safetensors: the server sent the whole file \(200\) instead of the range asked for: starting over/);
      const inspect = JSON.parse((await runKit(['inspect', 'x.io/big/model:1'], { home })).stdout) as { manifest: { layers: Array<{ digest: string; annotations: Record<string, string> }> } };
      const layer = inspect.manifest.layers.find((l) => l.annotations['org.cncf.model.filepath'] === 'weights/model.safetensors');
      assert.equal(layer?.digest, `sha256:${sha256Hex(FILES[1]!.content)}`);
    } finally {
      hub.cdn = {};
    }
  });
});
