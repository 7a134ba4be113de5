/**
 * Concurrency: four kit processes (pack, tag, pull from a real registry, remove) working in ONE
 * store at once, 50 rounds, while this process keeps reading index.json. Afterwards: no tag
 * lost (every tag a process reported as created and no process reported as removed is in the
 * index, and nothing else is), index.json parsed every time it was read, and
 * `kit store verify` finds the store clean with nothing left in the ingest area.
 *
 * The rounds are built to collide: the packer and the puller re-create, round after round, an
 * artifact whose every tag the remover deletes (`kit remove --all`, which deletes its blobs),
 * so blobs vanish while other processes are reusing them.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { tempDir } from '../helpers/tmp.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { kit, kitOk, verifyStore, type KitRun } from './helpers/kit.js';
import { makeProject } from './helpers/project.js';
import { seededRandom } from './helpers/rng.js';

const ROUNDS = Number(process.env.KIT_CONCURRENCY_ROUNDS ?? 50);
const SEED = 424242;
const ENV = { SOURCE_DATE_EPOCH: '1700000000' };
const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';

const skip = await registrySkipReason();

/*
 * The race this test provokes on purpose: a pack or pull re-creating an artifact whose blobs a
 * concurrent `kit remove --all` deletes between the moment it found them in the store and the
 * moment it tags. The store refuses such a tag (it never points a tag at missing blobs) and the
 * command builds or copies again (src/store/blob-race.ts): no command may fail.
 */

interface Ledger {
  created: Set<string>;
  removed: Set<string>;
}

describe('four kit processes in one store', { skip }, () => {
  let reg: RunningRegistry;
  before(async () => {
    reg = await startRegistry();
  });
  after(async () => reg?.stop());

  it(`pack, tag, pull and remove at once for ${ROUNDS} rounds: no lost tag, index.json always whole, verify clean`, { timeout: 900_000 }, async (t: TestContext) => {
    const work = await tempDir('kit-conc-');
    // Two small projects sharing two of three shards: B differs from A by one shard.
    const a = await makeProject(join(work, 'a'), { shards: 3, shardMiB: 0.25, seed: 11 });
    const b = await makeProject(join(work, 'b'), { shards: 3, shardMiB: 0.25, seed: 11 });
    await makeProject(join(work, 'b-shard'), { shards: 3, shardMiB: 0.25, seed: 12 });
    await copyFile(join(work, 'b-shard', 'models', 'model-00003-of-00003.safetensors'), join(b.dir, 'models', 'model-00003-of-00003.safetensors'));

    // The registry holds both artifacts, under a tag per round (so that each pull creates a new local tag).
    const pub = await tempDir('kit-conc-pub-');
    const digestA = packedDigest(await kitOk(['pack', a.dir, '-t', `${reg.host}/conc/src:a`, '--json'], { home: pub, env: ENV }));
    const digestB = packedDigest(await kitOk(['pack', b.dir, '-t', `${reg.host}/conc/src:b`, '--json'], { home: pub, env: ENV }));
    assert.notEqual(digestA, digestB);
    await kitOk(['push', `${reg.host}/conc/src:a`, `${reg.host}/conc/pulled:seed`], { home: pub });
    await kitOk(['push', `${reg.host}/conc/src:b`, `${reg.host}/conc/pulled:seed-b`], { home: pub });
    const manifests = { a: await getManifest(reg.url, 'conc/pulled', 'seed'), b: await getManifest(reg.url, 'conc/pulled', 'seed-b') };
    for (let r = 1; r <= ROUNDS; r++) await putManifest(reg.url, 'conc/pulled', `t${r}`, r % 2 === 0 ? manifests.b : manifests.a);

    const home = await tempDir('kit-conc-store-');
    const indexPath = join(home, 'store', 'index.json');
    const base = 'conc.test/base/model:0';
    await kitOk(['pack', a.dir, '-t', base], { home, env: ENV });
    const ledger: Ledger = { created: new Set([base]), removed: new Set() };
    const digestOf = new Map<string, string>([[base, digestA]]);

    // This process reads index.json all along: it must always be whole, valid JSON.
    const watcher = { reads: 0, bad: [] as string[], stop: false };
    const watching = (async () => {
      while (!watcher.stop) {
        const text = await readFile(indexPath, 'utf8');
        watcher.reads++;
        try {
          const doc = JSON.parse(text) as { schemaVersion?: number; manifests?: unknown };
          if (doc.schemaVersion !== 2 || !Array.isArray(doc.manifests)) watcher.bad.push(`not an index: ${text.slice(0, 200)}`);
        } catch (err) {
          watcher.bad.push(`${(err as Error).message}: ${text.slice(0, 200)}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const rnd = seededRandom(SEED);
    let removedAll = 0;
    let collectedRounds = 0;
    const counts = { pack: 0, tag: 0, pull: 0, remove: 0, gc: 0 };
    const started = Date.now();
    try {
      for (let r = 1; r <= ROUNDS; r++) {
        const even = r % 2 === 0;
        // Victims: tags from earlier rounds still there. On even rounds, every tag of artifact B at
        // once (its blobs go) while the packer and the puller are re-creating B.
        const live = [...ledger.created].filter((x) => !ledger.removed.has(x) && x !== base);
        const ofB = live.filter((x) => digestOf.get(x) === digestB);
        let removeArgs: string[] | undefined;
        // Every fifth round a `kit store gc` (default grace period) instead: it must not disturb the others.
        if (r % 5 === 0) removeArgs = ['store', 'gc', '--json'];
        else if (even && ofB.length > 0) removeArgs = ['remove', ofB[Math.floor(rnd() * ofB.length)]!, '--all', '--json'];
        else if (live.length > 0) removeArgs = ['remove', live[Math.floor(rnd() * live.length)]!, '--json'];

        const packTag = `conc.test/pack/model:${r}`;
        const tagTag = `conc.test/tag/model:${r}`;
        const pullRef = `${reg.host}/conc/pulled:t${r}`;
        const jobs: Array<Promise<KitRun>> = [
          kit(['pack', even ? b.dir : a.dir, '-t', packTag, '--json'], { home, env: ENV }),
          kit(['tag', base, tagTag, '--json'], { home }),
          kit(['pull', pullRef, '--json', '--progress', 'none', '--plain-http'], { home }),
          removeArgs ? kit(removeArgs, { home }) : Promise.resolve({ code: 0, signal: null, stdout: '', stderr: '', ms: 0 }),
        ];
        const [pack, tag, pull, remove] = await Promise.all(jobs);
        const what = `round ${r}`;

        for (const [name, run] of [['pack', pack], ['pull', pull]] as const) {
          assert.equal(run!.code, 0, `${what}: kit ${name} failed:\n${run!.stderr}`);
        }
        assert.equal(tag!.code, 0, `${what}: kit tag failed:\n${tag!.stderr}`);
        assert.equal(remove!.code, 0, `${what}: kit ${removeArgs?.join(' ')} failed:\n${remove!.stderr}`);

        for (const x of (JSON.parse(pack!.stdout) as { tags: string[] }).tags) note(ledger, digestOf, x, even ? digestB : digestA);
        counts.pack++;
        note(ledger, digestOf, (JSON.parse(tag!.stdout) as { target: string }).target, digestA);
        counts.tag++;
        note(ledger, digestOf, (JSON.parse(pull!.stdout) as { destination: string }).destination, even ? digestB : digestA);
        counts.pull++;
        if (removeArgs?.[0] === 'store') {
          const gc = JSON.parse(remove!.stdout) as { blobs: { removed: string[] } };
          assert.deepEqual(gc.blobs.removed, [], `${what}: gc removed blobs younger than its grace period`);
          counts.gc++;
        } else if (removeArgs) {
          counts.remove++;
          if (removeArgs.includes('--all')) removedAll++;
        }
        const removal = removeArgs?.[0] === 'remove' ? (JSON.parse(remove!.stdout) as { untagged: string[]; removedBlobs: number }) : { untagged: [], removedBlobs: 0 };
        for (const x of removal.untagged) ledger.removed.add(x);
        if (removal.removedBlobs > 0) collectedRounds++;

        // No lost tag, after every round: the index holds exactly what was created and not removed.
        const index = JSON.parse(await readFile(indexPath, 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> };
        const present = index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '?').sort();
        const expected = [...ledger.created].filter((x) => !ledger.removed.has(x)).sort();
        assert.deepEqual(present, expected, `${what}: the index differs from what the processes reported`);
      }
    } finally {
      watcher.stop = true;
      await watching;
    }
    const elapsed = Date.now() - started;
    assert.deepEqual(watcher.bad, [], 'index.json was read torn or invalid');

    const v = await verifyStore(home);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.clean, true, JSON.stringify(v.problems));
    assert.deepEqual(v.leftovers, [], 'something was left in the ingest area');
    const expected = [...ledger.created].filter((x) => !ledger.removed.has(x));
    assert.equal(v.tags, expected.length);
    const list = JSON.parse((await kitOk(['list', '--json'], { home })).stdout) as Array<{ reference: string }>;
    assert.deepEqual(list.map((x) => x.reference).sort(), expected.sort());
    // What the races left unreferenced (blobs of a first attempt whose tag was refused), gc removes; the store stays whole.
    const gc = JSON.parse((await kitOk(['store', 'gc', '--now', '--json'], { home })).stdout) as { blobs: { removed: string[] } };
    const after = await verifyStore(home);
    assert.ok(after.clean && after.unreferenced.blobs === 0 && after.tags === expected.length, JSON.stringify(after));

    t.diagnostic(
      `${ROUNDS} rounds of 4 processes in ${(elapsed / 1000).toFixed(1)}s: ${counts.pack} packs, ${counts.tag} tags, ${counts.pull} pulls, ${counts.remove} removes, ${counts.gc} gc runs ` +
        `(${removedAll} of them --all, ${collectedRounds} deleted blobs); ${ledger.created.size} tags created, ${ledger.removed.size} removed, ${expected.length} left, none lost; ` +
        `index.json read ${watcher.reads} times, always whole; gc then removed ${gc.blobs.removed.length} unreferenced blobs`,
    );
  });
});

function note(ledger: Ledger, digestOf: Map<string, string>, ref: string, digest: string): void {
  assert.ok(!ledger.created.has(ref), `${ref} reported created twice`);
  ledger.created.add(ref);
  digestOf.set(ref, digest);
}

function packedDigest(r: KitRun): string {
  return (JSON.parse(r.stdout) as { digest: string }).digest;
}

async function getManifest(url: string, repo: string, tag: string): Promise<Buffer> {
  const res = await request(`${url}/v2/${repo}/manifests/${tag}`, { headers: { accept: INDEX_MEDIA_TYPE } });
  assert.equal(res.statusCode, 200);
  return Buffer.from(await res.body.arrayBuffer());
}

async function putManifest(url: string, repo: string, tag: string, bytes: Buffer): Promise<void> {
  const res = await request(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': INDEX_MEDIA_TYPE }, body: bytes });
  await res.body.dump();
  assert.equal(res.statusCode, 201, `PUT manifest ${tag}: ${res.statusCode}`);
}
