/**
 * RemoteRepository against a real CNCF distribution 2.8 registry (plain HTTP, anonymous):
 * blobs (small, 20 MiB streamed in one PUT and in chunks), manifests, resolve, fetch with
 * offsets, tags, deletion, cross-repository mount, the referrers tag fallback, error mapping,
 * and what skopeo sees of it all.
 *
 * The client is the real one (src/registry/client.ts); KIT_TEST_CLIENT=raw swaps in the bare
 * undici client of the harness, to tell a protocol bug from a transport one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { KitError } from '../../src/errors.js';
import { MediaType, type Descriptor } from '../../src/oci/descriptor.js';
import { sha256 } from '../../src/oci/digest.js';
import { createRegistryClient } from '../../src/registry/client.js';
import { RemoteRepository } from '../../src/registry/repository.js';
import { referrersTag } from '../../src/registry/referrers.js';
import type { RegistryClient } from '../../src/registry/types.js';
import { rawRegistryClient, registrySkipReason, startRegistry, type RunningRegistry } from './harness/registry-server.js';

const run = promisify(execFile);
const skip = await registrySkipReason();
const MiB = 1024 * 1024;

// ---------------------------------------------------------------- content helpers

async function clientFor(reg: { host: string; url: string }): Promise<RegistryClient> {
  if (process.env.KIT_TEST_CLIENT === 'raw') return rawRegistryClient(reg.url);
  return createRegistryClient(reg.host, { settings: { plainHttp: reg.url.startsWith('http:') }, credentials: async () => undefined });
}

/** Deterministic pseudo-random bytes (AES-CTR keystream of a seed), generated in 64 KiB pieces. */
function noise(seed: string, size: number): () => Readable {
  return () => {
    const key = createHash('sha256').update(seed).digest().subarray(0, 16);
    const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
    const zeros = Buffer.alloc(64 * 1024);
    let left = size;
    return new Readable({
      read() {
        if (left === 0) return void this.push(null);
        const n = Math.min(left, zeros.length);
        left -= n;
        this.push(cipher.update(zeros.subarray(0, n)));
      },
    });
  };
}

async function digestOf(open: () => Readable): Promise<Descriptor> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of open() as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { mediaType: 'application/octet-stream', digest: `sha256:${h.digest('hex')}`, size };
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function blobOf(bytes: Buffer, mediaType = 'application/vnd.cncf.model.weight.v1.raw'): Descriptor {
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

function jsonBytes(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

const EMPTY = Buffer.from('{}');
const EMPTY_DESC: Descriptor = { mediaType: MediaType.Empty, digest: sha256(EMPTY), size: EMPTY.length };

function manifestOf(config: Descriptor, layers: Descriptor[], extra: Record<string, unknown> = {}): { desc: Descriptor; bytes: Buffer } {
  const bytes = jsonBytes({ schemaVersion: 2, mediaType: MediaType.ImageManifest, ...extra, config, layers });
  return { desc: { mediaType: MediaType.ImageManifest, digest: sha256(bytes), size: bytes.length }, bytes };
}

async function rejects(p: Promise<unknown>, code: string): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KitError, `expected a KitError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected a KitError ${code}, but it succeeded`);
}

async function hasCommand(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Upload sessions the registry still holds open. A cancelled session loses its `data` and
 * `startedat` files; distribution 2.8 leaves a `hashstates/` stub behind, which does not count.
 */
async function openUploads(storage: string, repo: string): Promise<string[]> {
  const dir = join(storage, 'docker/registry/v2/repositories', repo, '_uploads');
  const open: string[] = [];
  for (const id of await readdir(dir).catch(() => [] as string[])) {
    const files = await readdir(join(dir, id)).catch(() => [] as string[]);
    if (files.includes('data') || files.includes('startedat')) open.push(id);
  }
  return open;
}

// ---------------------------------------------------------------- the suite

describe('RemoteRepository against distribution 2.8 (plain HTTP, anonymous)', { skip }, () => {
  let reg: RunningRegistry;
  let client: RegistryClient;
  let repo: RemoteRepository;
  let config: { desc: Descriptor; bytes: Buffer };
  let layer: { desc: Descriptor; bytes: Buffer };
  let model: { desc: Descriptor; bytes: Buffer };

  before(async () => {
    reg = await startRegistry();
    client = await clientFor(reg);
    repo = new RemoteRepository(client, 'team/model');
    const configBytes = jsonBytes({ descriptor: { name: 'demo' }, config: {}, modelfs: { type: 'layers', diffIds: [] } });
    config = { desc: blobOf(configBytes, 'application/vnd.cncf.model.config.v1+json'), bytes: configBytes };
    const layerBytes = Buffer.from('weights '.repeat(1000));
    layer = { desc: blobOf(layerBytes), bytes: layerBytes };
    model = manifestOf(config.desc, [layer.desc], { artifactType: 'application/vnd.cncf.model.manifest.v1+json' });
  });

  after(async () => {
    await reg?.stop();
  });

  describe('blobs', () => {
    it('pushes a small blob; exists then says true and fetch returns its bytes', async () => {
      assert.equal(await repo.exists(layer.desc), false);
      await repo.push(layer.desc, Readable.from([layer.bytes]));
      assert.equal(await repo.exists(layer.desc), true);
      assert.deepEqual(await readAll(await repo.fetch(layer.desc)), layer.bytes);
      await repo.push(config.desc, Readable.from([config.bytes]));
      assert.equal(await repo.exists(config.desc), true);
    });

    it('pushes an empty blob', async () => {
      const empty = blobOf(Buffer.alloc(0));
      await repo.push(empty, Readable.from([]));
      assert.equal(await repo.exists(empty), true);
      assert.equal((await readAll(await repo.fetch(empty))).length, 0);
    });

    it('exists is false for a blob the registry does not have, and for a wrong size', async () => {
      assert.equal(await repo.exists(blobOf(Buffer.from('never pushed'))), false);
      assert.equal(await repo.exists({ ...layer.desc, size: layer.desc.size + 1 }), false);
    });

    it('streams a 20 MiB blob in one monolithic PUT, reading the source once', async () => {
      const open = noise('monolithic', 20 * MiB);
      const desc = await digestOf(open);
      let opened = 0;
      const mono = new RemoteRepository(client, 'team/big', { upload: { mode: 'monolithic' } });
      await mono.push(desc, (opened++, open()));
      assert.equal(opened, 1);
      assert.equal(await mono.exists(desc), true);
      assert.deepEqual(await digestOf(() => Readable.from(readAllLater(mono, desc))), desc);
      assert.deepEqual(await openUploads(reg.storage, 'team/big'), []);
    });

    it('uploads a 20 MiB blob in chunks (5 MiB PATCHes) when chunking is forced', async () => {
      const open = noise('chunked', 20 * MiB + 12345);
      const desc = await digestOf(open);
      const chunked = new RemoteRepository(client, 'team/chunked', { upload: { mode: 'chunked', chunkSize: 5 * MiB } });
      await chunked.push(desc, open());
      assert.equal(await chunked.exists(desc), true);
      assert.deepEqual(await digestOf(() => Readable.from(readAllLater(chunked, desc))), desc);
    });

    it('fetch with an offset returns exactly the tail, for every offset from 0 to the size', async () => {
      const open = noise('chunked', 20 * MiB + 12345);
      const desc = await digestOf(open);
      const chunked = new RemoteRepository(client, 'team/chunked');
      const whole = await readAll(open());
      for (const offset of [0, 1, 4 * MiB + 7, desc.size - 1, desc.size]) {
        const tail = await readAll(await chunked.fetch(desc, { offset }));
        assert.equal(tail.length, desc.size - offset, `length from ${offset}`);
        assert.ok(tail.equals(whole.subarray(offset)), `bytes from ${offset}`);
      }
      await assert.rejects(chunked.fetch(desc, { offset: desc.size + 1 }), (e: unknown) => e instanceof KitError);
    });

    it('refuses content longer or shorter than declared, and the registry keeps nothing', async () => {
      const bytes = Buffer.from('twelve bytes');
      const desc = blobOf(bytes);
      await rejects(repo.push({ ...desc, size: 5 }, Readable.from([bytes])), 'SIZE_MISMATCH');
      await rejects(repo.push({ ...desc, size: 50 }, Readable.from([bytes])), 'SIZE_MISMATCH');
      // Small blobs are checked before any upload session is opened.
      assert.deepEqual(await openUploads(reg.storage, 'team/model'), []);
      // Chunked: a source that ends early cancels its session.
      const chunked = new RemoteRepository(client, 'team/short', { upload: { mode: 'chunked', chunkSize: 1 * MiB } });
      await rejects(chunked.push({ ...desc, size: 3 * MiB }, noise('short', 2 * MiB + 5)()), 'SIZE_MISMATCH');
      assert.deepEqual(await openUploads(reg.storage, 'team/short'), []);
      // Streamed (over the buffering threshold), too long: the request is aborted.
      const open = noise('too-long', 5 * MiB);
      const big = await digestOf(open);
      await rejects(repo.push({ ...big, size: 5 * MiB - 10 }, open()), 'SIZE_MISMATCH');
      await rejects(repo.push({ ...big, size: 5 * MiB + 10 }, open()), 'SIZE_MISMATCH');
      assert.equal(await repo.exists(desc), false);
      assert.equal(await repo.exists(big), false);
    });

    it('maps the registry refusing a digest (400 DIGEST_INVALID) to DIGEST_MISMATCH, buffered, streamed and chunked', async () => {
      const bytes = Buffer.from('the real content');
      const lie: Descriptor = { ...blobOf(Buffer.from('other content!!!')), size: bytes.length };
      const err = await rejects(repo.push(lie, Readable.from([bytes])), 'DIGEST_MISMATCH');
      assert.match(err.message, /127\.0\.0\.1:\d+\/team\/model/);
      const open = noise('digest-lie', 6 * MiB);
      const real = await digestOf(open);
      const streamedLie = { ...real, digest: sha256('not it') };
      await rejects(repo.push(streamedLie, open()), 'DIGEST_MISMATCH');
      const chunked = new RemoteRepository(client, 'team/model', { upload: { mode: 'chunked', chunkSize: 2 * MiB } });
      await rejects(chunked.push(streamedLie, open()), 'DIGEST_MISMATCH');
      // No session check here: distribution cancels a session whose digest failed by itself
      // (our DELETE then gets 404) yet leaves its files on disk.
      assert.equal(await repo.exists(lie), false);
      assert.equal(await repo.exists(streamedLie), false);
    });
  });

  describe('manifests and tags', () => {
    it('pushes a manifest and resolves it by tag and by digest', async () => {
      await repo.pushManifest(model.desc, model.bytes, '1.0');
      const byTag = await repo.resolve('1.0');
      assert.equal(byTag.digest, model.desc.digest);
      assert.equal(byTag.size, model.desc.size);
      assert.equal(byTag.mediaType, MediaType.ImageManifest);
      const byDigest = await repo.resolve(model.desc.digest);
      assert.equal(byDigest.digest, model.desc.digest);
      assert.equal(byDigest.size, model.bytes.length);
      assert.equal(await repo.exists(model.desc), true);
    });

    it('fetch returns the manifest bytes, from an offset too', async () => {
      assert.ok((await readAll(await repo.fetch(model.desc))).equals(model.bytes));
      assert.ok((await readAll(await repo.fetch(model.desc, { offset: 10 }))).equals(model.bytes.subarray(10)));
    });

    it('push (the Target way) stores a manifest by digest, verifying it first', async () => {
      const other = manifestOf(config.desc, [layer.desc], { annotations: { 'org.opencontainers.image.version': '2' } });
      await repo.push(other.desc, Readable.from([other.bytes]));
      assert.equal((await repo.resolve(other.desc.digest)).digest, other.desc.digest);
      const tampered = Buffer.from(other.bytes);
      tampered[tampered.length - 3]! ^= 1;
      await rejects(repo.push(other.desc, Readable.from([tampered])), 'DIGEST_MISMATCH');
    });

    it('refuses a manifest whose blobs are missing, with the registry reason', async () => {
      const orphan = manifestOf(config.desc, [blobOf(Buffer.from('not pushed'))]);
      const err = await rejects(repo.pushManifest(orphan.desc, orphan.bytes, 'orphan'), 'REGISTRY_ERROR');
      assert.match(err.message, /MANIFEST_BLOB_UNKNOWN/);
    });

    it('tag adds another tag to the same manifest', async () => {
      await repo.tag(model.desc, 'latest');
      await repo.tag(model.desc, 'stable');
      assert.equal((await repo.resolve('latest')).digest, model.desc.digest);
      assert.equal((await repo.resolve('stable')).digest, model.desc.digest);
    });

    it('listTags lists every tag', async () => {
      assert.deepEqual((await repo.listTags()).sort(), ['1.0', 'latest', 'stable']);
    });

    it('a missing tag is NOT_FOUND with exit code 3, naming registry/repo:tag', async () => {
      const err = await rejects(repo.resolve('nope'), 'NOT_FOUND');
      assert.equal(err.exitCode, 3);
      assert.ok(err.message.includes(`${reg.host}/team/model:nope`), err.message);
      const missing = sha256('missing manifest');
      const byDigest = await rejects(repo.resolve(missing), 'NOT_FOUND');
      assert.ok(byDigest.message.includes(`${reg.host}/team/model@${missing}`), byDigest.message);
      const unknownRepo = new RemoteRepository(client, 'team/does-not-exist');
      await rejects(unknownRepo.resolve('1.0'), 'NOT_FOUND');
      await rejects(unknownRepo.listTags(), 'NOT_FOUND');
    });

    it('refuses tags and repository names that would bend the URL', async () => {
      await rejects(repo.resolve('../../_catalog'), 'REFERENCE_INVALID');
      await rejects(repo.resolve('a?b'), 'REFERENCE_INVALID');
      await assert.rejects(repo.resolve('sha256:zz'), (e: unknown) => e instanceof KitError);
      assert.throws(() => new RemoteRepository(client, 'Team/Model'), (e: unknown) => e instanceof KitError && e.code === 'REFERENCE_INVALID');
      assert.throws(() => new RemoteRepository(client, 'team/../x'), (e: unknown) => e instanceof KitError);
    });

    it('deleteManifest removes the manifest and every tag on it', async () => {
      const doomed = manifestOf(config.desc, [layer.desc], { annotations: { doomed: 'yes' } });
      await repo.pushManifest(doomed.desc, doomed.bytes, 'doomed');
      await repo.deleteManifest(doomed.desc);
      await rejects(repo.resolve('doomed'), 'NOT_FOUND');
      await rejects(repo.resolve(doomed.desc.digest), 'NOT_FOUND');
      assert.equal(await repo.exists(doomed.desc), false);
      await rejects(repo.deleteManifest(doomed.desc), 'NOT_FOUND');
    });
  });

  describe('cross-repository mount', () => {
    it('mounts a blob from another repository (201) without sending it', async () => {
      const other = new RemoteRepository(client, 'other/model');
      assert.equal(await other.exists(layer.desc), false);
      assert.equal(await other.mount(layer.desc, 'team/model'), true);
      assert.equal(await other.exists(layer.desc), true);
    });

    it('answers false, and cancels the session it was given, when the source lacks the blob (202)', async () => {
      const other = new RemoteRepository(client, 'other/model');
      const absent = blobOf(Buffer.from('nowhere'));
      assert.equal(await other.mount(absent, 'team/model'), false);
      assert.deepEqual(await openUploads(reg.storage, 'other/model'), []);
    });
  });

  describe('referrers (distribution 2.8 has no referrers API: the tag fallback)', () => {
    const SBOM = 'application/vnd.example.sbom+json';
    const SIG = 'application/vnd.example.signature';

    function referrer(artifactType: string, note: string): { desc: Descriptor; bytes: Buffer } {
      return manifestOf(EMPTY_DESC, [EMPTY_DESC], {
        artifactType,
        subject: model.desc,
        annotations: { note },
      });
    }

    it('lists none before any referrer exists', async () => {
      assert.deepEqual(await repo.referrers(model.desc), []);
    });

    it('pushes referrers, keeps the sha256-<hex> index current, and lists them (filtered too)', async () => {
      await repo.push(EMPTY_DESC, Readable.from([EMPTY]));
      const sbom = referrer(SBOM, 'sbom');
      const sig = referrer(SIG, 'sig');
      await repo.pushReferrer(sbom.desc, sbom.bytes, model.desc);
      await repo.pushReferrer(sig.desc, sig.bytes, model.desc);
      await repo.pushReferrer(sig.desc, sig.bytes, model.desc); // again: no duplicate entry

      const all = await repo.referrers(model.desc);
      assert.deepEqual(all.map((d) => d.digest).sort(), [sbom.desc.digest, sig.desc.digest].sort());
      const onlySbom = await repo.referrers(model.desc, { artifactType: SBOM });
      assert.deepEqual(onlySbom, [{ ...sbom.desc, artifactType: SBOM, annotations: { note: 'sbom' } }]);

      const index = await repo.resolve(referrersTag(model.desc.digest));
      assert.equal(index.mediaType, MediaType.ImageIndex);
      assert.ok((await repo.listTags()).includes(referrersTag(model.desc.digest)));
    });

    it('refuses a referrer whose subject is another manifest', async () => {
      const wrong = manifestOf(EMPTY_DESC, [EMPTY_DESC], { subject: layer.desc });
      await rejects(repo.pushReferrer(wrong.desc, wrong.bytes, model.desc), 'REFERRER_INVALID');
    });
  });

  describe('as skopeo sees it', () => {
    it('skopeo inspect --raw returns the manifest bytes we pushed, and lists our tags', async (t) => {
      if (!(await hasCommand('skopeo'))) return t.skip('skopeo is not installed');
      const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/team/model:1.0`], { encoding: 'buffer' });
      assert.ok(Buffer.from(stdout).equals(model.bytes), 'skopeo sees byte-identical manifest');
      const index = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/team/model:${referrersTag(model.desc.digest)}`]);
      const parsed = JSON.parse(index.stdout) as { mediaType: string; manifests: Descriptor[] };
      assert.equal(parsed.mediaType, MediaType.ImageIndex);
      assert.equal(parsed.manifests.length, 2);
      const tags = JSON.parse((await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${reg.host}/team/model`])).stdout) as { Tags: string[] };
      assert.ok(tags.Tags.includes('1.0') && tags.Tags.includes('stable'));
    });

    it('skopeo copies what we pushed to an OCI layout, blobs intact', async (t) => {
      if (!(await hasCommand('skopeo'))) return t.skip('skopeo is not installed');
      const dir = join(reg.storage, '..', 'skopeo-oci');
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/team/model:1.0`, `oci:${dir}:copy`]);
      const names = await readdir(join(dir, 'blobs', 'sha256'));
      for (const d of [model.desc, config.desc, layer.desc]) assert.ok(names.includes(d.digest.slice(7)), `${d.digest} copied`);
    });
  });
});

/** The whole blob as an async iterable (for digestOf, which wants a Readable factory). */
async function* readAllLater(repo: RemoteRepository, desc: Descriptor): AsyncGenerator<Buffer> {
  for await (const c of (await repo.fetch(desc)) as AsyncIterable<Buffer>) yield c;
}
