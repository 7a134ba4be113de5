/**
 * Crashes: `kit pack`, `kit pull` and `kit unpack` killed with SIGKILL at 20 random moments each
 * (a seeded generator, so a failure repeats). After every kill `kit store verify --json` must
 * report the store clean, with at most leftovers of the interrupted command in the ingest area
 * (owned by the dead process), and running the command again must complete, reusing the blobs
 * finished before the kill and continuing partial downloads where they stopped.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { diffTrees, snapshotTree } from '../helpers/tree.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { startFaultProxy, type FaultProxy } from '../integration/harness/fault-proxy.js';
import { exists, ingestFiles, kit, killDuringWork, kitOk, partialBytes, verifyStore, type KitRun, type KitSpawnOptions, type VerifyJson } from './helpers/kit.js';
import { makeProject } from './helpers/project.js';
import { seededRandom } from './helpers/rng.js';

const KILLS = Number(process.env.KIT_CRASH_KILLS ?? 20);
const MAX_RUNS = KILLS * 2;
const SEED = Number(process.env.KIT_CRASH_SEED ?? 20240501);
const ENV = { SOURCE_DATE_EPOCH: '1700000000' };
const MiB = 1024 * 1024;

let project: { dir: string; bytes: number };
let startupMs = 300;

before(async () => {
  project = await makeProject(join(await tempDir('kit-crash-'), 'project'), { shards: 3, shardMiB: 6, seed: 7 });
  // What node needs to start kit: kills before that are not interesting moments.
  const t = await kitOk(['version'], { home: await tempDir('kit-crash-') });
  startupMs = t.ms;
});

/**
 * Moments to kill at: uniform over the work of a run, from the moment it opened the store (or
 * created the output folder) to its end. The length of that window is measured by a full run
 * and re-estimated from every run that finished before its kill (the machine's load varies).
 */
class Moments {
  private readonly next: () => number;
  constructor(seed: number, private windowMs: number) {
    this.next = seededRandom(seed);
  }
  pick(): number {
    return Math.round(this.next() * this.windowMs);
  }
  finished(r: { ms: number; markerMs?: number }): void {
    if (r.markerMs !== undefined) this.windowMs = Math.max(20, Math.min(this.windowMs, (r.ms - r.markerMs) * 0.95));
  }
}

/** A full run, timed from the marker: the window kills are drawn from. */
async function calibrate(args: string[], opts: KitSpawnOptions, marker: () => Promise<boolean>): Promise<{ run: KitRun; windowMs: number }> {
  const run = await killDuringWork(args, opts, marker, () => 1e9);
  assert.equal(run.code, 0, run.stderr);
  return { run, windowMs: run.ms - (run.markerMs ?? startupMs) };
}

/** The store after a kill: not damaged; leftovers only in ingest/ (or index.json's lock), none owned by a live process. */
function assertCleanAfterKill(v: VerifyJson & { code: number | null; stderr: string }, what: string): void {
  assert.equal(v.code, 0, `${what}: kit store verify failed:\n${v.stderr}`);
  assert.equal(v.clean, true, `${what}: store damaged: ${JSON.stringify(v.problems)}`);
  assert.deepEqual(v.problems, [], what);
  for (const l of v.leftovers) {
    assert.ok(l.path.includes(`${join('store', 'ingest')}/`) || l.path.endsWith('index.json.lock'), `${what}: leftover outside ingest/: ${l.path}`);
    assert.notEqual(l.owner, 'active', `${what}: ${l.path} claims a live owner after the kill`);
  }
}

function tally(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

function summary(m: Map<string, number>): string {
  return [...m].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
}

const skip = await registrySkipReason();

// The three loops run side by side: each spends most of its time starting node and waiting for
// fsync, and 60 kills one after the other would take minutes.
describe('kit killed with SIGKILL at random moments', { concurrency: 3 }, () => {
  let reg: RunningRegistry | undefined;
  let proxy: FaultProxy | undefined;
  before(async () => {
    if (skip) return;
    reg = await startRegistry();
    proxy = await startFaultProxy({ target: reg.url, rules: [] });
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it(`pack: a clean store after each kill, and the re-run completes reusing finished layers (${KILLS} kills)`, { timeout: 600_000 }, async (t: TestContext) => {
    const ref = 'crash.test/pack/model:1';
    const args = ['pack', project.dir, '-t', ref, '-v', '--json'];
    const calib = await tempDir('kit-crash-');
    const full = await calibrate(args, { home: calib, env: ENV }, exists(join(calib, 'store', 'index.json')));
    const expected = JSON.parse(full.run.stdout) as { digest: string; layers: Array<{ digest: string; size: number }> };
    await rm(calib, { recursive: true, force: true });
    const when = new Moments(SEED, full.windowMs);

    let kills = 0;
    let finished = 0;
    let reused = 0;
    const leftovers = new Map<string, number>();
    for (let run = 0; kills < KILLS && run < MAX_RUNS; run++) {
      const home = await tempDir('kit-crash-pack-');
      const r = await killDuringWork(args, { home, env: ENV }, exists(join(home, 'store', 'index.json')), () => when.pick());
      const at = r.killAtMs;
      if (r.signal !== 'SIGKILL') {
        assert.equal(r.code, 0, r.stderr);
        when.finished(r);
        finished++;
        await rm(home, { recursive: true, force: true });
        continue;
      }
      kills++;
      const what = `pack killed at ${at} ms (kill ${kills})`;
      const v = await verifyStore(home);
      assertCleanAfterKill(v, what);
      for (const l of v.leftovers) tally(leftovers, l.kind);
      const blobsBefore = new Set(await readdir(join(home, 'store', 'blobs', 'sha256')).catch(() => [] as string[]));

      const again = await kitOk(args, { home, env: ENV });
      const result = JSON.parse(again.stdout) as { digest: string };
      assert.equal(result.digest, expected.digest, `${what}: the re-run packed something else`);
      // Layers finished before the kill are found in the store, not stored twice.
      const existed = new Set([...again.stderr.matchAll(/ sha256:([a-f0-9]{64}) \(already in store\)/g)].map((m) => m[1]!));
      for (const l of expected.layers) {
        const hex = l.digest.slice('sha256:'.length);
        if (blobsBefore.has(hex)) {
          assert.ok(existed.has(hex), `${what}: layer ${l.digest} was in the store but not reused`);
          reused++;
        }
      }
      // The re-run removed the dead process's temp files; the store is whole and tagged.
      assert.deepEqual(await ingestFiles(home), [], `${what}: ingest not emptied by the re-run`);
      const index = JSON.parse(await readFile(join(home, 'store', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      assert.deepEqual(index.manifests.map((m) => m.digest), [expected.digest]);
      if (kills === KILLS) {
        const final = await verifyStore(home);
        assert.ok(final.clean && final.leftovers.length === 0 && final.unreferenced.blobs === 0, JSON.stringify(final));
      }
      await rm(home, { recursive: true, force: true });
    }
    t.diagnostic(`pack: ${kills} kills survived (${finished} runs finished before their kill), ${reused} finished layers reused by re-runs, leftovers seen: ${summary(leftovers)}`);
    assert.equal(kills, KILLS, `only ${kills} of ${MAX_RUNS} runs were killed before finishing`);
  });

  it(`unpack: the store untouched by each kill, and the re-run completes the tree (${KILLS} kills)`, { timeout: 600_000 }, async (t: TestContext) => {
    const home = await tempDir('kit-crash-unpack-');
    const ref = 'crash.test/unpack/model:1';
    await kitOk(['pack', project.dir, '-t', ref], { home, env: ENV });
    const storeBefore = await snapshotTree(join(home, 'store'));
    const expected = await snapshotTree(project.dir);
    const work = await tempDir('kit-crash-unpack-out-');
    const calibOut = join(work, 'calib');
    const full = await calibrate(['unpack', ref, '-d', calibOut], { home }, exists(calibOut));
    await rm(calibOut, { recursive: true, force: true });
    const when = new Moments(SEED + 1, full.windowMs);

    let kills = 0;
    let finished = 0;
    let tempsLeft = 0;
    for (let run = 0; kills < KILLS && run < MAX_RUNS; run++) {
      const out = join(work, `out-${run}`);
      const r = await killDuringWork(['unpack', ref, '-d', out], { home }, exists(out), () => when.pick());
      const at = r.killAtMs;
      if (r.signal !== 'SIGKILL') {
        assert.equal(r.code, 0, r.stderr);
        when.finished(r);
        finished++;
        await rm(out, { recursive: true, force: true });
        continue;
      }
      kills++;
      const what = `unpack killed at ${at} ms (kill ${kills})`;
      // unpack only reads the store: it must be byte for byte what it was (a stronger check than
      // verify, and cheaper); `kit store verify` itself runs after every fourth kill.
      assert.deepEqual(diffTrees(storeBefore, await snapshotTree(join(home, 'store'))), [], `${what}: the store changed`);
      if (kills % 4 === 0) {
        const v = await verifyStore(home);
        assertCleanAfterKill(v, what);
        assert.deepEqual(v.leftovers, [], `${what}: unpack reads the store only`);
      }
      tempsLeft += (await snapshotTreeOrEmpty(out)).filter((p) => /(^|\/)(\.kit-partial-|Kitfile\.kit-)/.test(p)).length;

      // The same command again completes: every file already there is complete (written to a
      // temp name, then renamed), holds the artifact's bytes, and is taken as done.
      const again = await kit(['unpack', ref, '-d', out], { home });
      assert.equal(again.code, 0, `${what}: the re-run failed: ${again.stderr}`);
      assert.deepEqual(diffTrees(expected, await snapshotTree(out)), [], `${what}: restored tree differs`);
      await rm(out, { recursive: true, force: true });
    }
    assert.deepEqual(diffTrees(storeBefore, await snapshotTree(join(home, 'store'))), [], 'the store changed');
    t.diagnostic(`unpack: ${kills} kills survived (${finished} runs finished before their kill); every re-run completed, taking the files already written as done; ${tempsLeft} temp files left by kills, all removed by the re-runs`);
    assert.equal(kills, KILLS, `only ${kills} of ${MAX_RUNS} runs were killed before finishing`);
  });

  it(`pull: a clean store after each kill, and the re-run resumes partial downloads and keeps finished blobs (${KILLS} kills)`, { skip, timeout: 600_000 }, async (t: TestContext) => {
    const registry = reg!;
    const front = proxy!;
    const packHome = await tempDir('kit-crash-pull-');
    const ref = `${registry.host}/crash/pull:1`;
    await kitOk(['pack', project.dir, '-t', ref], { home: packHome, env: ENV });
    await kitOk(['push', ref], { home: packHome });
    const source = `${front.host}/crash/pull:1`;
    const args = ['pull', source, '--json', '--progress', 'none'];
    const calib = await tempDir('kit-crash-');
    const full = await calibrate(args, { home: calib }, exists(join(calib, 'store', 'index.json')));
    const digest = (JSON.parse(full.run.stdout) as { digest: string }).digest;
    const manifest = JSON.parse((await kitOk(['inspect', ref], { home: packHome })).stdout) as { manifest: { config: { size: number }; layers: Array<{ digest: string; size: number }> } };
    const layers = manifest.manifest.layers;
    const total = layers.reduce((n, l) => n + l.size, 0) + manifest.manifest.config.size;
    await rm(calib, { recursive: true, force: true });
    const when = new Moments(SEED + 2, full.windowMs);

    let kills = 0;
    let finished = 0;
    let withPartial = 0;
    let resumedBytes = 0;
    let refetched = 0;
    let fullyRefetched = 0;
    const leftovers = new Map<string, number>();
    for (let run = 0; kills < KILLS && run < MAX_RUNS; run++) {
      const home = await tempDir('kit-crash-pull-');
      const r = await killDuringWork(args, { home }, exists(join(home, 'store', 'index.json')), () => when.pick());
      const at = r.killAtMs;
      if (r.signal !== 'SIGKILL') {
        assert.equal(r.code, 0, r.stderr);
        when.finished(r);
        finished++;
        await rm(home, { recursive: true, force: true });
        continue;
      }
      kills++;
      const what = `pull killed at ${at} ms (kill ${kills})`;
      const v = await verifyStore(home);
      assertCleanAfterKill(v, what);
      for (const l of v.leftovers) tally(leftovers, l.kind);

      // What the re-run may still need: each layer not in the store, minus its partial bytes.
      const blobs = new Set(await readdir(join(home, 'store', 'blobs', 'sha256')).catch(() => [] as string[]));
      const partials = new Map((await ingestFiles(home)).filter((f) => f.name.endsWith('.partial')).map((f) => [f.name.slice(0, 64), f.size]));
      let needed = 0;
      let kept = 0;
      for (const l of layers) {
        const hex = l.digest.slice('sha256:'.length);
        if (blobs.has(hex)) {
          kept += l.size;
          continue;
        }
        needed += l.size - (partials.get(hex) ?? 0);
        kept += partials.get(hex) ?? 0;
      }
      const partial = await partialBytes(home);
      if (partial > 0) withPartial++;
      const unfinished = layers.some((l) => (partials.get(l.digest.slice('sha256:'.length)) ?? 0) > 0 && (partials.get(l.digest.slice('sha256:'.length)) ?? 0) < l.size);

      const logFrom = front.log.length;
      const again = await kitOk(args, { home });
      assert.equal((JSON.parse(again.stdout) as { digest: string }).digest, digest);
      const entries = front.log.slice(logFrom).filter((l) => /\/blobs\/sha256:/.test(l.url) && l.method === 'GET');
      const received = entries.reduce((n, l) => n + l.bytesOut, 0);
      // Layers finished before the kill are not fetched again; partial ones continue with a Range request.
      const slack = manifest.manifest.config.size + 4096;
      assert.ok(received <= needed + slack, `${what}: re-run fetched ${received} bytes, only ${needed} were missing (${partial} in partial downloads)`);
      if (kept > 0) assert.ok(received < total, `${what}: re-run fetched ${received} of ${total} bytes despite ${kept} kept`);
      else fullyRefetched++;
      if (unfinished) assert.ok(entries.some((l) => typeof l.headers.range === 'string'), `${what}: partial download not resumed with Range: ${JSON.stringify([...partials])}`);
      resumedBytes += kept;
      refetched += received;
      assert.deepEqual(await ingestFiles(home), [], `${what}: ingest not emptied by the re-run`);
      if (kills === KILLS) {
        const final = await verifyStore(home);
        assert.ok(final.clean && final.leftovers.length === 0 && final.unreferenced.blobs === 0, JSON.stringify(final));
      }
      await rm(home, { recursive: true, force: true });
    }
    t.diagnostic(
      `pull: ${kills} kills survived (${finished} runs finished before their kill); ${withPartial} left a partial download; re-runs reused ${(resumedBytes / MiB).toFixed(1)} MiB ` +
        `(finished blobs and partials) and fetched ${(refetched / MiB).toFixed(1)} MiB; ${fullyRefetched} kills came before any byte was kept; leftovers seen: ${summary(leftovers)}`,
    );
    assert.equal(kills, KILLS, `only ${kills} of ${MAX_RUNS} runs were killed before finishing`);
  });
});

async function snapshotTreeOrEmpty(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}
