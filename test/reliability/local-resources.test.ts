/**
 * Hostile local conditions: the disk filling up during pack, tag and pull (a small tmpfs the
 * test mounts, as root), project files kit may not read, and a store folder it may not write.
 * Each gives one clear `kit: ` line and a non-zero exit, and leaves the store whole: nothing
 * half-written, no tag pointing at missing blobs, and what a failed command left is either
 * reused by the next run or removed by `kit store gc`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { startFaultProxy } from '../integration/harness/fault-proxy.js';
import { failureLine, ingestFiles, kit, kitOk, verifyStore, type KitRun } from './helpers/kit.js';
import { makeProject } from './helpers/project.js';
import { giveTo, isRoot, loudSkip, mountTmpfs, tmpfsSkipReason, unprivileged, type Tmpfs } from './helpers/system.js';

const MiB = 1024 * 1024;

/** One `kit: ...` line (plus its hint), no stack trace, and a non-zero exit. */
function assertOneLineFailure(r: KitRun, pattern: RegExp, what: string): string {
  assert.notEqual(r.code, 0, `${what}: should have failed:\n${r.stdout}`);
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}`);
  const line = failureLine(r.stderr);
  assert.ok(line, `${what}: no single "kit: " line (or a stack trace):\n${r.stderr}`);
  assert.match(line, pattern, what);
  assert.ok(r.stderr.split('\n').filter((l) => l.startsWith('kit: ')).length === 1, `${what}: more than one error line:\n${r.stderr}`);
  return line;
}

/** Fills the file system holding `dir` (a tmpfs) with one file, until it refuses more. */
async function fill(dir: string): Promise<string> {
  const path = join(dir, 'filler');
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(256 * 1024, 1);
  try {
    for (;;) await fh.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return path;
}

const probe = await tempDir('kit-local-probe-');
const noTmpfs = tmpfsSkipReason(probe);
if (noTmpfs) loudSkip(noTmpfs);
const noRegistry = await registrySkipReason();

describe('disk full', { skip: noTmpfs }, () => {
  const mounts: Tmpfs[] = [];
  after(() => {
    for (const m of mounts) m.unmount();
  });

  async function smallDisk(bytes: number): Promise<Tmpfs> {
    const dir = join(await tempDir('kit-local-disk-'), 'mnt');
    await mkdir(dir);
    const m = mountTmpfs(dir, bytes);
    mounts.push(m);
    return m;
  }

  it('during pack: one line, nothing tagged, no temp file left; gc frees the finished layers; packing again works once there is room', async () => {
    const disk = await smallDisk(8 * MiB);
    const home = join(disk.dir, 'home');
    const project = await makeProject(join(await tempDir('kit-local-'), 'p'), { shards: 3, shardMiB: 3, seed: 31 });

    const r = await kit(['pack', project.dir, '-t', 'local.test/full/model:1'], { home });
    const line = assertOneLineFailure(r, /^kit: no space left on the device/, 'pack on a full disk');
    assert.match(r.stderr, /hint: .*kit store gc/, 'the hint says how to free space');
    assert.ok(line.length < 300);

    const v = await verifyStore(home);
    assert.equal(v.clean, true, JSON.stringify(v.problems));
    assert.equal(v.tags, 0, 'nothing tagged');
    assert.deepEqual(v.leftovers, [], 'the failed write removed its temp file');
    assert.ok(v.unreferenced.blobs >= 1, 'layers finished before the disk filled stay (the next pack reuses them)');

    const gc = JSON.parse((await kitOk(['store', 'gc', '--now', '--json'], { home })).stdout) as { blobs: { removed: string[]; bytes: number } };
    assert.equal(gc.blobs.removed.length, v.unreferenced.blobs);
    assert.equal((await verifyStore(home)).blobs, 0);

    disk.resize(64 * MiB);
    await kitOk(['pack', project.dir, '-t', 'local.test/full/model:1'], { home });
    const ok = await verifyStore(home);
    assert.ok(ok.clean && ok.tags === 1 && ok.leftovers.length === 0, JSON.stringify(ok));
  });

  it('while tagging: one line, index.json unchanged and whole', async () => {
    const disk = await smallDisk(16 * MiB);
    const home = join(disk.dir, 'home');
    const project = await makeProject(join(await tempDir('kit-local-'), 'p'), { shards: 1, shardMiB: 1, seed: 32 });
    await kitOk(['pack', project.dir, '-t', 'local.test/full/model:1'], { home });
    const indexPath = join(home, 'store', 'index.json');
    const before = await readFile(indexPath, 'utf8');
    const filler = await fill(disk.dir);

    const tag = await kit(['tag', 'local.test/full/model:1', 'local.test/full/model:2'], { home });
    assertOneLineFailure(tag, /^kit: no space left on the device/, 'tag on a full disk');
    assert.equal(await readFile(indexPath, 'utf8'), before, 'index.json untouched');
    const other = await makeProject(join(await tempDir('kit-local-'), 'q'), { shards: 1, shardMiB: 1, seed: 33 });
    const pack = await kit(['pack', other.dir, '-t', 'local.test/full/other:1'], { home });
    assertOneLineFailure(pack, /^kit: no space left on the device/, 'pack on a full disk');
    assert.equal(await readFile(indexPath, 'utf8'), before, 'index.json untouched');
    assert.deepEqual(await ingestFiles(home), [], 'no temp file left');

    // verify needs no room (it falls back to reading without the index lock)
    const v = await verifyStore(home);
    assert.ok(v.clean && v.tags === 1, JSON.stringify(v));

    await rm(filler);
    await kitOk(['tag', 'local.test/full/model:1', 'local.test/full/model:2'], { home });
    assert.equal((await verifyStore(home)).tags, 2);
  });

  // A 10 MiB blob goes through the streaming writer, a 40 MiB one through the O_DIRECT block
  // writer (io/blob-writer.ts, from 32 MiB): both must keep what reached the disk.
  for (const { shardMiB, diskMiB, writer } of [
    { shardMiB: 10, diskMiB: 6, writer: 'streamed' },
    { shardMiB: 40, diskMiB: 20, writer: 'written in aligned blocks' },
  ]) {
    it(`during pull of a ${shardMiB} MiB blob (${writer}): one line, the partial download kept and resumed once there is room`, { skip: noRegistry }, async () => {
      const reg: RunningRegistry = await startRegistry();
      const proxy = await startFaultProxy({ target: reg.url, rules: [] });
      try {
        const src = await tempDir('kit-local-src-');
        const project = await makeProject(join(src, 'p'), { shards: 1, shardMiB, seed: 34 + shardMiB });
        const ref = `${reg.host}/full/pull:${shardMiB}`;
        await kitOk(['pack', project.dir, '-t', ref], { home: src });
        await kitOk(['push', ref], { home: src });

        const disk = await smallDisk(diskMiB * MiB);
        const home = join(disk.dir, 'home');
        const viaProxy = `${proxy.host}/full/pull:${shardMiB}`;
        const r = await kit(['pull', viaProxy, '--progress', 'none'], { home });
        assertOneLineFailure(r, /^kit: no space left on the device/, 'pull on a full disk');
        const v = await verifyStore(home);
        assert.equal(v.clean, true, JSON.stringify(v.problems));
        assert.equal(v.tags, 0);
        const partial = v.leftovers.filter((l) => l.kind === 'partial').reduce((n, l) => n + l.bytes, 0);
        assert.ok(partial > 0, `the partial download is kept: ${JSON.stringify(v.leftovers)}`);
        assert.ok(v.leftovers.every((l) => l.kind === 'partial' || l.kind === 'lock'), JSON.stringify(v.leftovers));

        disk.resize((shardMiB * 3 + 16) * MiB);
        const from = proxy.log.length;
        await kitOk(['pull', viaProxy, '--progress', 'none'], { home });
        const received = proxy.log.slice(from).filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(l.url)).reduce((n, l) => n + l.bytesOut, 0);
        assert.ok(received <= project.bytes - partial + 64 * 1024, `re-pull fetched ${received} bytes, ${partial} were kept`);
        const ok = await verifyStore(home);
        assert.ok(ok.clean && ok.tags === 1 && ok.leftovers.length === 0, JSON.stringify(ok));
      } finally {
        await proxy.stop();
        await reg.stop();
      }
    });
  }
});

describe('permissions', () => {
  const user = unprivileged();
  if (!isRoot) process.stderr.write(`[local-resources] permission tests run kit as ${user.name}\n`);
  const as = { ...(user.uid !== undefined ? { uid: user.uid, gid: user.gid! } : {}) };

  it(`files kit may not read: one line naming the file, nothing stored (kit runs as ${user.name})`, async () => {
    const work = await tempDir('kit-local-perm-');
    const project = await makeProject(join(work, 'p'), { shards: 2, shardMiB: 0.5, seed: 41 });
    const home = join(work, 'home');
    await mkdir(home);
    await giveTo(work, user);
    const ref = 'local.test/perm/model:1';

    const shard = join(project.dir, 'models', 'model-00002-of-00002.safetensors');
    await chmod(shard, 0o000);
    const r1 = await kit(['pack', project.dir, '-t', ref], { home, ...as });
    assertOneLineFailure(r1, /^kit: permission denied: .*model-00002-of-00002\.safetensors$/, 'unreadable weight file');
    await chmod(shard, 0o644);

    const data = join(project.dir, 'data');
    await chmod(data, 0o000);
    const r2 = await kit(['pack', project.dir, '-t', ref], { home, ...as });
    assertOneLineFailure(r2, /^kit: .*(permission denied|EACCES).*data/i, 'unreadable folder');
    await chmod(data, 0o755);

    const kitfile = join(project.dir, 'Kitfile');
    await chmod(kitfile, 0o000);
    const r3 = await kit(['pack', project.dir, '-t', ref], { home, ...as });
    assertOneLineFailure(r3, /^kit: .*Kitfile/, 'unreadable Kitfile');
    await chmod(kitfile, 0o644);

    const v = await verifyStore(home, as);
    assert.ok(v.clean && v.tags === 0 && v.leftovers.length === 0, JSON.stringify(v));
    await kitOk(['pack', project.dir, '-t', ref], { home, ...as });

    // Unpacking into a folder kit may not write: one line, nothing written.
    const locked = join(work, 'locked');
    await mkdir(locked);
    await giveTo(locked, user);
    await chmod(locked, 0o555);
    const u = await kit(['unpack', ref, '-d', join(locked, 'out')], { home, ...as });
    assertOneLineFailure(u, /^kit: .*(permission denied|EACCES)/i, 'unpack into a read-only folder');
    await chmod(locked, 0o755);
  });

  describe('a store folder kit may not write', () => {
    let reg: RunningRegistry | undefined;
    before(async () => {
      if (!noRegistry) reg = await startRegistry();
    });
    after(async () => reg?.stop());

    it(`refuses every write in one line and changes nothing; reading still works (kit runs as ${user.name})`, async () => {
      const work = await tempDir('kit-local-ro-');
      const project = await makeProject(join(work, 'p'), { shards: 1, shardMiB: 0.5, seed: 42 });
      const other = await makeProject(join(work, 'q'), { shards: 1, shardMiB: 0.5, seed: 43 });
      const home = join(work, 'home');
      await mkdir(home);
      await giveTo(work, user);
      const ref = 'local.test/ro/model:1';
      await kitOk(['pack', project.dir, '-t', ref], { home, ...as });
      if (reg) {
        const src = await tempDir('kit-local-ro-src-');
        await kitOk(['pack', other.dir, '-t', `${reg.host}/ro/other:1`], { home: src });
        await kitOk(['push', `${reg.host}/ro/other:1`], { home: src });
      }
      const store = join(home, 'store');
      await chmodTree(store, false);
      const before = await snapshotTree(store);
      try {
        const writes: Array<[string, string[]]> = [
          ['pack', ['pack', other.dir, '-t', 'local.test/ro/other:1']],
          ['tag', ['tag', ref, 'local.test/ro/model:2']],
          ['remove', ['remove', ref]],
          ['store gc', ['store', 'gc', '--now']],
        ];
        if (reg) writes.push(['pull', ['pull', `${reg.host}/ro/other:1`, '--progress', 'none']]);
        for (const [what, args] of writes) {
          const r = await kit(args, { home, ...as });
          assertOneLineFailure(r, /^kit: the local store .* is not writable \(E(ACCES|PERM|ROFS) on .*\)$/, `${what} in a read-only store`);
          assert.match(r.stderr, /hint: .*KIT_HOME/, what);
        }
        assert.deepEqual(diffTrees(before, await snapshotTree(store)), [], 'the store changed');

        const list = JSON.parse((await kitOk(['list', '--json'], { home, ...as })).stdout) as unknown[];
        assert.equal(list.length, 1);
        await kitOk(['inspect', ref], { home, ...as });
        const out = join(work, 'out');
        await mkdir(out);
        await giveTo(out, user);
        await kitOk(['unpack', ref, '-d', out], { home, ...as });
        const v = await verifyStore(home, as);
        assert.ok(v.code === 0 && v.clean && v.tags === 1, JSON.stringify(v));
        assert.deepEqual(diffTrees(before, await snapshotTree(store)), [], 'reading changed the store');
      } finally {
        await chmodTree(store, true);
      }
    });
  });
});

/** chmod -R a-w (or u+w back) on a store: folders 0555/0755, files 0444/0644. */
async function chmodTree(dir: string, writable: boolean): Promise<void> {
  const st = await lstat(dir);
  if (st.isDirectory()) {
    for (const name of await readdir(dir)) await chmodTree(join(dir, name), writable);
    await chmod(dir, writable ? 0o755 : 0o555);
  } else if (st.isFile()) {
    await chmod(dir, writable ? st.mode | 0o200 : st.mode & ~0o222);
  }
}
