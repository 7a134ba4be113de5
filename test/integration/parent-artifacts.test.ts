/**
 * Artifacts that build on other artifacts (a Kitfile's model.path naming another artifact),
 * against the real registry: the parent's layers are listed by the child, never downloaded to
 * pack, mounted (not uploaded) on push, and restored by unpack; pull and unpack follow the chain
 * of parents and refuse a loop and a chain over 10 parents in one line.
 *
 * Everything goes through the fault proxy (no rules) so that its log counts the bytes uploaded.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runKit } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { snapshotTree } from '../helpers/tree.js';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType, type Descriptor } from '../../src/oci/descriptor.js';
import { openRepository } from '../../src/registry/open.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from './harness/registry-server.js';
import { startFaultProxy, type FaultProxy } from './harness/fault-proxy.js';

const skip = await registrySkipReason();

async function kit(args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return runKit(args, { home, env: { KIT_CONFIG_HOME: join(home, 'config'), DOCKER_CONFIG: join(home, 'docker') } });
}

async function ok(args: string[], home: string): Promise<string> {
  const r = await kit(args, home);
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

/** The one `kit: ...` line of a failure (plus its hint line), and nothing else. */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('hint:'));
  assert.equal(lines.length, 1, `one error line expected, got:\n${stderr}`);
  return lines[0]!;
}

const BASE_WEIGHTS = randomBytes(768 * 1024);

async function parentProject(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'model'));
  await writeFile(join(dir, 'model', 'base.safetensors'), BASE_WEIGHTS);
  await writeFile(join(dir, 'model', 'config.json'), '{"architectures":["TinyForCausalLM"]}\n');
  await writeFile(join(dir, 'README.md'), '# base model\n');
  await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\npackage:\n  name: base\nmodel:\n  name: base\n  path: model\ndocs:\n  - path: README.md\n');
  return dir;
}

async function childProject(parentRef: string): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'adapter'));
  await writeFile(join(dir, 'adapter', 'adapter.safetensors'), randomBytes(64 * 1024));
  await writeFile(join(dir, 'notes.md'), '# fine-tuned on our data\n');
  await writeFile(
    join(dir, 'Kitfile'),
    `manifestVersion: 1.0.0\npackage:\n  name: tuned\nmodel:\n  name: tuned\n  path: ${parentRef}\n  parts:\n    - path: adapter/adapter.safetensors\n      type: lora\ndocs:\n  - path: notes.md\n`,
  );
  return dir;
}

/** Bytes clients sent to upload blobs (POST/PATCH/PUT on upload sessions) in these log entries. */
function uploadedBytes(proxy: FaultProxy, from: number): number {
  return proxy.log.slice(from).filter((l) => /\/blobs\/uploads\//.test(l.url)).reduce((n, l) => n + l.bytesIn, 0);
}

interface PackJson {
  digest: string;
  layers: Array<{ path: string; digest: string; size: number; inherited?: true }>;
  parent?: { reference: string; digest: string; layers: number; ancestors: string[] };
}

describe('artifacts built on other artifacts (model.path naming an artifact)', { skip }, () => {
  let reg: RunningRegistry;
  let proxy: FaultProxy;
  let host: string;
  let parentRef: string;
  let parentDigest: string;

  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy({ target: reg.url, rules: [] });
    host = proxy.host;
    parentRef = `${host}/base/model:1`;
    const home = await tempDir();
    await ok(['pack', await parentProject(), '-t', parentRef], home);
    parentDigest = (JSON.parse(await ok(['push', parentRef, '--json'], home)) as { digest: string }).digest;
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('packs a child without downloading the parent, pushes it uploading none of the parent\'s bytes, and a fresh pull unpacks both', async () => {
    const home = await tempDir();
    const childRef = `${host}/tuned/model:1`;
    const before = proxy.log.length;
    const packed = JSON.parse(await ok(['pack', await childProject(parentRef), '-t', childRef, '--json'], home)) as PackJson;
    assert.equal(packed.parent?.reference, parentRef);
    assert.equal(packed.parent?.digest, parentDigest);
    const inherited = packed.layers.filter((l) => l.inherited);
    assert.deepEqual(inherited.map((l) => l.path).sort(), ['model/base.safetensors', 'model/config.json']);
    // Only manifests and configs were read from the registry: no blob other than the config.
    const blobGets = proxy.log.slice(before).filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(l.url));
    assert.equal(blobGets.length, 1, 'the parent config only');
    const blobs = await readdir(join(home, 'store', 'blobs', 'sha256'));
    assert.ok(!blobs.includes(sha256(BASE_WEIGHTS).slice('sha256:'.length)), 'the parent weights are not in the store');

    // The store accepts the child, says what it lacks, and gc keeps the parent's manifest and config.
    const verify = JSON.parse(await ok(['store', 'verify', '--json'], home)) as { clean: boolean; borrowed: { blobs: number; bytes: number } };
    assert.equal(verify.clean, true);
    assert.equal(verify.borrowed.blobs, 2);
    const gc = JSON.parse(await ok(['store', 'gc', '--now', '--json'], home)) as { blobs: { removed: string[] } };
    assert.deepEqual(gc.blobs.removed, []);
    const inspected = JSON.parse(await ok(['inspect', childRef], home)) as { manifest: { annotations: Record<string, string>; config: { size: number }; layers: Descriptor[] }; config: { modelfs: { diffIds: string[] }; config: Record<string, string> } };
    assert.equal(inspected.manifest.annotations['ml.kitops.modelkit.parent'], `${host}/base/model@${parentDigest}`);
    assert.equal(inspected.config.modelfs.diffIds.length, inspected.manifest.layers.length);
    assert.deepEqual(inspected.manifest.layers.slice(0, 2).map((l) => l.digest), inherited.map((l) => l.digest));

    // Push: the parent's layers are mounted from its repository; only the child's own bytes move.
    const beforePush = proxy.log.length;
    const pushed = JSON.parse(await ok(['push', childRef, '--json'], home)) as { mounted: number; copied: number; bytes: number; parents: string[] };
    assert.equal(pushed.mounted, 2);
    const own = packed.layers.filter((l) => !l.inherited).reduce((n, l) => n + l.size, 0) + inspected.manifest.config.size;
    assert.equal(pushed.bytes, own);
    assert.equal(uploadedBytes(proxy, beforePush), own, 'the registry received the child\'s own blobs only');
    assert.deepEqual(pushed.parents, [`${host}/base/model@${parentDigest}`]);

    // Unpack of the local child fetches the parent's layers from the parent's registry...
    const out = join(await tempDir(), 'out');
    await ok(['unpack', childRef, '-d', out], home);
    assert.deepEqual([...(await snapshotTree(out)).keys()].sort(), ['Kitfile', 'adapter', 'adapter/adapter.safetensors', 'model', 'model/base.safetensors', 'model/config.json', 'notes.md']);
    // ...and --local says in one line why it cannot.
    const local = await kit(['unpack', childRef, '-d', join(await tempDir(), 'out'), '--local'], home);
    assert.notEqual(local.code, 0);
    assert.match(errorLine(local.stderr), /^kit: blob sha256:[0-9a-f]{64} of .*tuned\/model:1 is in none of/);
    assert.match(local.stderr, /hint: --local reads the local store only/);

    // A fresh store: pull brings the child whole and keeps the parent's manifest and config.
    const fresh = await tempDir();
    const pulled = JSON.parse(await ok(['pull', childRef, '--json'], fresh)) as { parents: Array<{ reference: string; digest: string; kept: string }> };
    assert.deepEqual(pulled.parents, [{ reference: `${host}/base/model@${parentDigest}`, digest: parentDigest, kept: 'metadata' }]);
    const out2 = join(await tempDir(), 'out');
    await ok(['unpack', childRef, '-d', out2, '--local'], fresh);
    const tree = await snapshotTree(out2);
    assert.deepEqual([...tree.keys()].sort(), ['Kitfile', 'adapter', 'adapter/adapter.safetensors', 'model', 'model/base.safetensors', 'model/config.json', 'notes.md']);
    assert.equal(tree.get('model/base.safetensors')!.sha256, sha256(BASE_WEIGHTS).slice('sha256:'.length));
    const freshVerify = JSON.parse(await ok(['store', 'verify', '--json'], fresh)) as { clean: boolean; borrowed: { blobs: number }; unreferenced: { blobs: number } };
    assert.equal(freshVerify.clean, true);
    assert.equal(freshVerify.borrowed.blobs, 0);
    assert.equal(freshVerify.unreferenced.blobs, 0, 'the parent\'s manifest and config are kept by the child');

    // Removing the child frees the parent's manifest and config with it.
    await ok(['remove', childRef], home);
    assert.deepEqual(await readdir(join(home, 'store', 'blobs', 'sha256')), []);
  });

  it('pushing to another registry copies the parent\'s layers from the parent\'s registry', async () => {
    const home = await tempDir();
    const childRef = `${host}/tuned/moved:1`;
    await ok(['pack', await childProject(parentRef), '-t', childRef], home);
    // reg.host is the registry itself, proxy.host the proxy in front of it: two registries to kit.
    const before = proxy.log.length;
    const pushed = JSON.parse(await ok(['push', childRef, `${reg.host}/elsewhere/tuned:1`, '--json'], home)) as { mounted: number; copied: number; bytes: number };
    assert.equal(pushed.mounted, 0);
    assert.ok(pushed.bytes > BASE_WEIGHTS.length, 'the parent weights were copied');
    const weightGets = proxy.log.slice(before).filter((l) => l.method === 'GET' && l.url.endsWith(sha256(BASE_WEIGHTS)));
    assert.equal(weightGets.length, 1, 'read once from the parent\'s registry');
    const out = join(await tempDir(), 'out');
    await ok(['unpack', `${reg.host}/elsewhere/tuned:1`, '-d', out], await tempDir());
    assert.equal((await snapshotTree(out)).get('model/base.safetensors')?.sha256, sha256(BASE_WEIGHTS).slice('sha256:'.length));
  });

  it('pack --push mounts the parent\'s layers too', async () => {
    const home = await tempDir();
    const childRef = `${host}/tuned/direct:1`;
    const beforePush = proxy.log.length;
    const r = JSON.parse(await ok(['pack', await childProject(parentRef), '-t', childRef, '--push', '--json'], home)) as PackJson & { pushed: Array<{ mounted: number; bytes: number }> };
    assert.equal(r.pushed[0]!.mounted, 2);
    assert.ok(uploadedBytes(proxy, beforePush) < BASE_WEIGHTS.length, 'the parent weights were not uploaded');
    const out = join(await tempDir(), 'out');
    await ok(['unpack', childRef, '-d', out], await tempDir());
    assert.ok((await snapshotTree(out)).has('model/base.safetensors'));
  });

  it('builds a KitOps ModelKit on a KitOps parent, and refuses to mix formats', async () => {
    const home = await tempDir();
    const kitopsParent = `${host}/base/kitops:1`;
    await ok(['pack', await parentProject(), '-t', kitopsParent, '--format', 'kitops'], home);
    await ok(['push', kitopsParent], home);
    const childRef = `${host}/tuned/kitops:1`;
    const child = await childProject(kitopsParent);
    await ok(['pack', child, '-t', childRef, '--format', 'kitops'], await tempDir());
    await ok(['pack', child, '-t', childRef, '--format', 'kitops', '--push'], home);
    const out = join(await tempDir(), 'out');
    await ok(['unpack', childRef, '-d', out], await tempDir());
    assert.deepEqual([...(await snapshotTree(out)).keys()].sort(), ['Kitfile', 'adapter', 'adapter/adapter.safetensors', 'model', 'model/base.safetensors', 'model/config.json', 'notes.md']);

    const mixed = await kit(['pack', child, '-t', `${host}/tuned/mixed:1`], await tempDir());
    assert.equal(mixed.code, 2);
    assert.match(errorLine(mixed.stderr), /is made of KitOps ModelKit layers; a modelpack artifact cannot list them/);
  });

  describe('chains of parents', () => {
    /** Puts an artifact straight into the registry: a Kitfile naming `modelPath`, and one layer. */
    async function craft(ref: string, modelPath: string, layer: { mediaType: string; path: string; body: Buffer }): Promise<void> {
      const { repo, ref: parsed } = await openRepository(ref);
      const put = async (bytes: Buffer, mediaType: string): Promise<Descriptor> => {
        const d: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
        if (!(await repo.exists(d))) await repo.push(d, Readable.from([bytes]));
        return d;
      };
      const l = await put(layer.body, layer.mediaType);
      const config = await put(Buffer.from(JSON.stringify({ descriptor: {}, config: {}, modelfs: { type: 'layers', diffIds: [l.digest] } })), 'application/vnd.cncf.model.config.v1+json');
      const kitfile = `manifestVersion: 1.0.0\nmodel:\n  path: ${modelPath}\n`;
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ImageManifest,
        artifactType: 'application/vnd.cncf.model.manifest.v1+json',
        config,
        layers: [{ ...l, annotations: { 'org.cncf.model.filepath': layer.path } }],
        annotations: { 'ml.kitops.modelkit.kitfile': kitfile },
      }));
      await repo.pushManifest({ mediaType: MediaType.ImageManifest, digest: sha256(manifest), size: manifest.length }, manifest, parsed.tag);
    }
    const doc = (name: string) => ({ mediaType: 'application/vnd.cncf.model.doc.v1.raw', path: `${name}.md`, body: Buffer.from(`# ${name}\n`) });

    it('refuses a loop (a -> b -> a) in one line naming the chain, on pull, unpack and pack', async () => {
      await craft(`${host}/loop/a:1`, `${host}/loop/b:1`, doc('a'));
      await craft(`${host}/loop/b:1`, `${host}/loop/a:1`, doc('b'));
      const home = await tempDir();
      const chain = `${host}/loop/a:1 -> ${host}/loop/b:1 -> ${host}/loop/a:1`;
      const pull = await kit(['pull', `${host}/loop/a:1`], home);
      assert.equal(pull.code, 1);
      assert.equal(errorLine(pull.stderr), `kit: artifacts build on one another in a loop: ${chain}`);
      assert.deepEqual(JSON.parse(await ok(['list', '--format', 'json'], home)), [], 'nothing was stored');
      const unpack = await kit(['unpack', `${host}/loop/a:1`, '-d', join(await tempDir(), 'out')], home);
      assert.equal(errorLine(unpack.stderr), `kit: artifacts build on one another in a loop: ${chain}`);
      const child = await childProject(`${host}/loop/a:1`);
      const pack = await kit(['pack', child, '-t', `${host}/loop/c:1`], home);
      assert.equal(errorLine(pack.stderr), `kit: artifacts build on one another in a loop: ${chain} (reached from ${host}/loop/c:1)`);
    });

    it('follows 10 parents and refuses an 11th, naming the chain', async () => {
      // c0 -> c1 -> ... -> c11; c11 holds the model.
      const weights = { mediaType: 'application/vnd.cncf.model.weight.v1.raw', path: 'model.bin', body: randomBytes(1024) };
      await craft(`${host}/chain/c11:1`, 'model.bin', weights);
      for (let i = 10; i >= 0; i--) await craft(`${host}/chain/c${i}:1`, `${host}/chain/c${i + 1}:1`, doc(`c${i}`));

      const home = await tempDir();
      const refused = await kit(['pull', `${host}/chain/c0:1`], home);
      assert.equal(refused.code, 1);
      const names = Array.from({ length: 12 }, (_, i) => `${host}/chain/c${i}:1`);
      assert.equal(errorLine(refused.stderr), `kit: ${names[0]} builds on more than 10 artifacts in a chain: ${names.join(' -> ')}`);
      const unpackRefused = await kit(['unpack', names[0]!, '-d', join(await tempDir(), 'out')], home);
      assert.match(errorLine(unpackRefused.stderr), /builds on more than 10 artifacts in a chain/);

      // c1 has exactly 10 parents: pulled, each parent too (only their Kitfiles name them), and it unpacks with the model of c11.
      const pulled = JSON.parse(await ok(['pull', names[1]!, '--json'], home)) as { parents: Array<{ kept: string }> };
      assert.equal(pulled.parents.length, 10);
      assert.ok(pulled.parents.every((p) => p.kept === 'artifact'));
      const out = join(await tempDir(), 'out');
      await ok(['unpack', names[1]!, '-d', out, '--local'], home);
      assert.deepEqual([...(await snapshotTree(out)).keys()].sort(), ['Kitfile', 'c1.md', 'model.bin']);
    });
  });
});
