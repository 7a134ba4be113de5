/**
 * `kit store verify` and `kit store gc`, on stores in the states crashes and damage leave:
 * what verify reports (and its exit code), what gc removes and what its grace period and the
 * liveness of owners protect. Plus the crash windows too narrow for the random kills to hit
 * reliably, built by hand: a partial download made read-only by a commit that was killed
 * before its rename, and a download lock left after the blob was committed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { failureLine, ingestFiles, kit, kitOk, verifyStore } from './helpers/kit.js';
import { makeProject } from './helpers/project.js';
import { giveTo, unprivileged } from './helpers/system.js';
import { ownerTag } from '../../src/store/pid-lock.js';

const OLD = new Date(Date.now() - 3600_000); // an hour ago: past the default 10-minute grace period

interface GcJson {
  graceSeconds: number;
  blobs: { removed: string[]; bytes: number; keptYoung: number };
  ingest: { removed: string[]; bytes: number; kept: Array<{ path: string; reason: string }> };
}

async function gc(home: string, ...flags: string[]): Promise<GcJson> {
  return JSON.parse((await kitOk(['store', 'gc', '--json', ...flags], { home })).stdout) as GcJson;
}

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}


describe('kit store verify', () => {
  let project: string;
  before(async () => {
    project = (await makeProject(join(await tempDir('kit-tools-'), 'p'), { shards: 2, shardMiB: 0.25, seed: 61 })).dir;
  });

  it('passes a sound store (exit 0) and lists unreferenced blobs and leftovers without failing', async () => {
    const home = await tempDir('kit-tools-');
    await kitOk(['pack', project, '-t', 'tools.test/v/model:1'], { home });
    const ingest = join(home, 'store', 'ingest');
    await writeFile(join(ingest, `${await deadPid()}-${ownerTag()}-00000000-0000-4000-8000-000000000000.tmp`), 'half');
    await writeFile(join(home, 'store', 'blobs', 'sha256', 'a'.repeat(64)), ''); // not its digest: damage
    let v = await verifyStore(home);
    assert.equal(v.code, 1);
    assert.equal(v.clean, false);
    assert.deepEqual(v.problems.map((p) => p.kind), ['corrupt-blob']);
    assert.match(failureLine(v.stderr) ?? '', /^kit: the local store .* is damaged: 1 problem, first: blob sha256:a{64} is corrupt/);

    await chmod(join(home, 'store', 'blobs', 'sha256'), 0o755);
    await rm(join(home, 'store', 'blobs', 'sha256', 'a'.repeat(64)));
    v = await verifyStore(home);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.clean, true);
    assert.equal(v.tags, 1);
    assert.equal(v.leftovers.length, 1);
    assert.equal(v.leftovers[0]!.kind, 'temp');
    assert.equal(v.leftovers[0]!.owner, 'dead');
    const text = await kitOk(['store', 'verify'], { home });
    assert.match(text.stdout, /leftover .*\.tmp .*left by process \d+, which is gone/);
    assert.match(text.stdout, /No damage/);
  });

  it('finds a missing layer and a truncated one, names the tag, exits 1 in one line', async () => {
    const home = await tempDir('kit-tools-');
    const r = JSON.parse((await kitOk(['pack', project, '-t', 'tools.test/v/model:2', '--json'], { home })).stdout) as { layers: Array<{ digest: string }> };
    const blobs = join(home, 'store', 'blobs', 'sha256');
    await rm(join(blobs, r.layers[0]!.digest.slice(7)));
    await chmod(join(blobs, r.layers[1]!.digest.slice(7)), 0o644);
    await truncate(join(blobs, r.layers[1]!.digest.slice(7)), 10);
    const v = await verifyStore(home);
    assert.equal(v.code, 1);
    // The truncated one is reported once, as corrupt (its content no longer hashes to its name).
    assert.deepEqual(v.problems.map((p) => p.kind).sort(), ['corrupt-blob', 'missing-blob']);
    const missing = v.problems.find((p) => p.kind === 'missing-blob')!;
    assert.match(missing.message, new RegExp(`layer ${r.layers[0]!.digest} of manifest .* \\(in tools\\.test/v/model:2\\) is missing`));
    const plain = await kit(['store', 'verify'], { home });
    assert.equal(plain.code, 1);
    assert.match(failureLine(plain.stderr) ?? '', /^kit: the local store .* is damaged: 2 problems/);
    assert.match(plain.stderr, /\nhint: /);
  });

  it('reports a torn index.json as damage', async () => {
    const home = await tempDir('kit-tools-');
    await kitOk(['pack', project, '-t', 'tools.test/v/model:3'], { home });
    await writeFile(join(home, 'store', 'index.json'), '{"schemaVersion": 2, "manifests": [');
    const v = await verifyStore(home);
    assert.equal(v.code, 1);
    assert.equal(v.problems[0]!.kind, 'bad-index');
    assert.equal(v.unreferenced.blobs, v.blobs, 'with no index, nothing is referenced');
  });
});

describe('kit store gc', () => {
  let project: string;
  before(async () => {
    project = (await makeProject(join(await tempDir('kit-tools-'), 'p'), { shards: 2, shardMiB: 0.25, seed: 62 })).dir;
  });

  it('removes old unreferenced blobs, keeps young ones (a running pack may tag them) unless --now, never touches referenced ones', async () => {
    const home = await tempDir('kit-tools-');
    const keep = JSON.parse((await kitOk(['pack', project, '-t', 'tools.test/gc/keep:1', '--json'], { home })).stdout) as { digest: string };
    const other = (await makeProject(join(await tempDir('kit-tools-'), 'q'), { shards: 1, shardMiB: 0.25, seed: 63 })).dir;
    const gone = JSON.parse((await kitOk(['pack', other, '-t', 'tools.test/gc/gone:1', '--json'], { home })).stdout) as { digest: string; layers: Array<{ digest: string }> };
    // Untag without collecting, as a crash between untag and collect would leave it.
    const index = JSON.parse(await readFile(join(home, 'store', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    index.manifests = index.manifests.filter((m) => m.digest !== gone.digest);
    await writeFile(join(home, 'store', 'index.json'), JSON.stringify(index));
    const orphans = (await verifyStore(home)).unreferenced.blobs;
    assert.ok(orphans >= 3, `${orphans} unreferenced`);

    let r = await gc(home);
    assert.equal(r.graceSeconds, 600);
    assert.deepEqual(r.blobs.removed, [], 'all young');
    assert.equal(r.blobs.keptYoung, orphans);

    // Age one of them past the grace period: only it goes.
    const aged = gone.layers[0]!.digest;
    await utimes(join(home, 'store', 'blobs', 'sha256', aged.slice(7)), OLD, OLD);
    r = await gc(home);
    assert.deepEqual(r.blobs.removed, [aged]);
    r = await gc(home, '--grace', '30m');
    assert.deepEqual(r.blobs.removed, []);
    r = await gc(home, '--now');
    assert.equal(r.blobs.removed.length, orphans - 1);
    const v = await verifyStore(home);
    assert.ok(v.clean && v.unreferenced.blobs === 0 && v.tags === 1, JSON.stringify(v));
    const list = JSON.parse((await kitOk(['list', '--json'], { home })).stdout) as Array<{ digest: string }>;
    assert.deepEqual(list.map((x) => x.digest), [keep.digest]);
    const out = join(await tempDir('kit-tools-out-'), 'o');
    await kitOk(['unpack', 'tools.test/gc/keep:1', '-d', out], { home });
  });

  it('removes temp files of dead processes at once, keeps those of live ones even with --now, and partial downloads until stale', async () => {
    const home = await tempDir('kit-tools-');
    await kitOk(['pack', project, '-t', 'tools.test/gc/ingest:1'], { home });
    const ingest = join(home, 'store', 'ingest');
    const tag = ownerTag();
    const dead = await deadPid();
    const files = {
      deadTemp: join(ingest, `${dead}-${tag}-11111111-1111-4111-8111-111111111111.tmp`),
      liveTemp: join(ingest, `${process.pid}-${tag}-22222222-2222-4222-8222-222222222222.tmp`),
      foreignTemp: join(ingest, `${dead}-zzother-33333333-3333-4333-8333-333333333333.tmp`),
      youngPartial: join(ingest, `${'b'.repeat(64)}.partial`),
      oldPartial: join(ingest, `${'c'.repeat(64)}.partial`),
      deadLock: join(ingest, `${'c'.repeat(64)}.partial.lock`),
      livePartial: join(ingest, `${'d'.repeat(64)}.partial`),
      liveLock: join(ingest, `${'d'.repeat(64)}.partial.lock`),
    };
    for (const p of Object.values(files)) await writeFile(p, 'x');
    await writeFile(files.deadLock, String(dead));
    await writeFile(files.liveLock, String(process.pid));
    for (const p of [files.oldPartial, files.livePartial, files.deadTemp, files.liveTemp]) await utimes(p, OLD, OLD);

    const v = await verifyStore(home);
    assert.equal(v.clean, true);
    const owner = Object.fromEntries(v.leftovers.map((l) => [l.path, l.owner]));
    assert.equal(owner[files.deadTemp], 'dead');
    assert.equal(owner[files.liveTemp], 'active');
    assert.equal(owner[files.foreignTemp], 'unknown', 'another pid namespace: kit cannot tell');
    assert.equal(owner[files.livePartial], 'active');

    let r = await gc(home);
    assert.deepEqual(r.ingest.removed.sort(), [files.deadTemp, files.oldPartial, files.deadLock].sort());
    const kept = new Map(r.ingest.kept.map((k) => [k.path, k.reason]));
    assert.match(kept.get(files.liveTemp)!, /in use by process/);
    assert.match(kept.get(files.livePartial)!, /in use by process/);
    assert.match(kept.get(files.youngPartial)!, /next pull resumes it/);
    assert.match(kept.get(files.foreignTemp)!, /younger than the grace period/);

    r = await gc(home, '--now');
    assert.deepEqual(r.ingest.removed.sort(), [files.foreignTemp, files.youngPartial].sort());
    assert.deepEqual((await readdir(ingest)).sort(), [files.livePartial, files.liveLock, files.liveTemp].map((p) => p.slice(ingest.length + 1)).sort());
  });

  it('cleans upload sessions of interrupted pushes once stale, and the folders they leave', async () => {
    const home = await tempDir('kit-tools-');
    await kitOk(['pack', project, '-t', 'tools.test/gc/uploads:1'], { home });
    const dir = join(home, 'store', 'uploads', '127.0.0.1_5000', 'team', 'model');
    await mkdir(dir, { recursive: true });
    const record = join(dir, `${'e'.repeat(64)}.json`);
    await writeFile(record, JSON.stringify({ version: 1 }));
    let r = await gc(home);
    assert.deepEqual(r.ingest.removed, []);
    assert.match(r.ingest.kept[0]!.reason, /next push continues it/);
    await utimes(record, OLD, OLD);
    for (const d of [dir, join(dir, '..'), join(dir, '..', '..')]) await utimes(d, OLD, OLD);
    r = await gc(home);
    assert.deepEqual(r.ingest.removed, [record]);
    assert.deepEqual(await readdir(join(home, 'store', 'uploads')), [], 'empty folders removed');
  });

  it('refuses a bad --grace as a usage error (exit 2)', async () => {
    const r = await kit(['store', 'gc', '--grace', 'soon'], { home: await tempDir('kit-tools-') });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /duration/);
  });
});

const skip = await registrySkipReason();

describe('narrow crash windows, built by hand', { skip }, () => {
  let reg: RunningRegistry;
  let ref: string;
  let layers: Array<{ digest: string; size: number }>;
  let blobs: string;
  before(async () => {
    reg = await startRegistry();
    const src = await tempDir('kit-tools-src-');
    const project = (await makeProject(join(src, 'p'), { shards: 1, shardMiB: 1, seed: 64 })).dir;
    ref = `${reg.host}/tools/model:1`;
    await kitOk(['pack', project, '-t', ref], { home: src });
    await kitOk(['push', ref], { home: src });
    layers = (JSON.parse((await kitOk(['inspect', ref], { home: src })).stdout) as { manifest: { layers: Array<{ digest: string; size: number }> } }).manifest.layers;
    blobs = join(src, 'store', 'blobs', 'sha256');
  });
  after(async () => reg?.stop());

  const user = unprivileged();
  const as = user.uid !== undefined ? { uid: user.uid, gid: user.gid! } : {};

  it(`a complete partial download left read-only (killed between chmod and rename) is committed by the next pull (as ${user.name})`, async () => {
    const home = await tempDir('kit-tools-');
    await kitOk(['store', 'verify'], { home }); // creates the layout
    const big = layers.reduce((a, b) => (b.size > a.size ? b : a));
    const partial = join(home, 'store', 'ingest', `${big.digest.slice(7)}.partial`);
    await writeFile(partial, await readFile(join(blobs, big.digest.slice(7))));
    await writeFile(`${partial}.lock`, String(await deadPid()));
    await giveTo(home, user);
    await chmod(partial, 0o444);
    const r = await kit(['pull', ref, '--progress', 'none'], { home, ...as });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await ingestFiles(home), []);
    assert.equal((await stat(join(home, 'store', 'blobs', 'sha256', big.digest.slice(7)))).size, big.size);
    assert.ok((await verifyStore(home)).clean);
  });

  it('a download lock left after its blob was committed is removed by the next write to the store', async () => {
    const home = await tempDir('kit-tools-');
    await kitOk(['pull', ref, '--progress', 'none'], { home });
    const lock = join(home, 'store', 'ingest', `${layers[0]!.digest.slice(7)}.partial.lock`);
    await writeFile(lock, String(await deadPid()));
    const project = (await makeProject(join(await tempDir('kit-tools-'), 'p'), { shards: 1, shardMiB: 0.1, seed: 65 })).dir;
    await kitOk(['pack', project, '-t', 'tools.test/sweep/model:1'], { home });
    assert.deepEqual(await ingestFiles(home), []);
  });
});
