/**
 * RemoteRepository adapting to hosted registries' behaviour, reproduced by the fault proxy in
 * front of a real distribution 2.8: GHCR's 4 MiB PATCH limit, ECR's 201 to a PATCH, GAR's
 * refusal of chunked uploads, a proxy refusing big PUTs, paginated and hostile tag lists, HEAD
 * without a digest, Range ignored, blob GETs redirected to another origin, upload Locations on
 * another origin, and a lost chunk resumed from the registry's Range.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { KitError } from '../../src/errors.js';
import { MediaType, type Descriptor } from '../../src/oci/descriptor.js';
import { sha256 } from '../../src/oci/digest.js';
import { createRegistryClient } from '../../src/registry/client.js';
import { RemoteRepository } from '../../src/registry/repository.js';
import type { RegistryClient } from '../../src/registry/types.js';
import { uploadHints } from '../../src/registry/upload.js';
import { startBlobMirror, startFaultProxy, type FaultProxy, type FaultRule } from './harness/fault-proxy.js';
import { rawRegistryClient, registrySkipReason, startRegistry, type RunningRegistry } from './harness/registry-server.js';

const skip = await registrySkipReason();
const MiB = 1024 * 1024;

async function clientFor(url: string, host: string): Promise<RegistryClient> {
  if (process.env.KIT_TEST_CLIENT === 'raw') return rawRegistryClient(url);
  return createRegistryClient(host, { settings: { plainHttp: true }, credentials: async () => undefined });
}

/** Deterministic pseudo-random bytes, streamed in 64 KiB pieces. */
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

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function blob(seed: string, size: number): Promise<{ desc: Descriptor; open: () => Readable; bytes: Buffer }> {
  const open = noise(seed, size);
  const bytes = await readAll(open());
  return { desc: { mediaType: 'application/octet-stream', digest: sha256(bytes), size }, open, bytes };
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

const patches = (p: FaultProxy) => p.log.filter((e) => e.method === 'PATCH');

describe('RemoteRepository adapts to registry quirks (fault proxy in front of distribution 2.8)', { skip }, () => {
  let reg: RunningRegistry;
  const proxies: Array<{ stop(): Promise<void> }> = [];

  /** A proxy with `rules` and a fresh client on it (upload hints are per client). */
  async function through(rules: FaultRule[], opts: { raw?: boolean } = {}): Promise<{ proxy: FaultProxy; client: RegistryClient }> {
    const proxy = await startFaultProxy({ target: reg.url, rules });
    proxies.push(proxy);
    const client = opts.raw ? rawRegistryClient(proxy.url) : await clientFor(proxy.url, proxy.host);
    return { proxy, client };
  }

  before(async () => {
    reg = await startRegistry();
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    await reg?.stop();
  });

  describe('uploads', () => {
    it('GHCR: a PATCH over 4 MiB answered 416 -> the chunk is resent in 4 MiB pieces, and later chunks stay small', async () => {
      const { proxy, client } = await through([{ kind: 'patch-limit', maxBytes: 4 * MiB, status: 416 }]);
      const b = await blob('ghcr', 20 * MiB + 3);
      const repo = new RemoteRepository(client, 'quirks/ghcr', { upload: { mode: 'chunked', chunkSize: 8 * MiB } });
      await repo.push(b.desc, b.open());
      assert.ok((await readAll(await repo.fetch(b.desc))).equals(b.bytes));
      const sent = patches(proxy);
      assert.equal(sent[0]!.status, 416, 'the first 8 MiB PATCH was refused');
      assert.ok(sent.slice(1).every((e) => e.status === 202 && e.bytesIn <= 4 * MiB), 'then only 4 MiB pieces');
      assert.equal(sent.filter((e) => e.status === 416).length, 1, 'refused once, then remembered');
      assert.equal(uploadHints(client).maxChunk, 4 * MiB);
    });

    it('ECR: a PATCH answered 201 counts as accepted', async () => {
      const { proxy, client } = await through([{ kind: 'patch-201' }]);
      const b = await blob('ecr', 9 * MiB);
      const repo = new RemoteRepository(client, 'quirks/ecr', { upload: { mode: 'chunked', chunkSize: 4 * MiB } });
      await repo.push(b.desc, b.open());
      assert.ok(patches(proxy).length >= 3 && patches(proxy).every((e) => e.status === 201));
      assert.equal(await repo.exists(b.desc), true);
    });

    it('GAR: chunked uploads refused -> the same bytes go out as one PUT, and the registry is remembered', async () => {
      const { proxy, client } = await through([{ kind: 'reject-patch', status: 405 }]);
      const repo = new RemoteRepository(client, 'quirks/gar', { upload: { chunkSize: 2 * MiB } });
      uploadHints(client).preferChunked = true; // as if this registry had asked for chunks before
      const b = await blob('gar', 7 * MiB + 1);
      await repo.push(b.desc, b.open());
      assert.ok((await readAll(await repo.fetch(b.desc))).equals(b.bytes));
      assert.equal(patches(proxy).length, 1, 'one refused PATCH');
      assert.equal(uploadHints(client).noChunked, true);
      const c = await blob('gar-2', 6 * MiB);
      await repo.push(c.desc, c.open());
      assert.equal(patches(proxy).length, 1, 'no PATCH for the next blob');
      assert.equal(await repo.exists(c.desc), true);
    });

    it('a proxy refusing a big single PUT (413): a buffered blob switches to chunks at once; a streamed one asks to be pushed again, which then uses chunks', async () => {
      const { proxy, client } = await through([{ kind: 'patch-limit', method: 'PUT', match: /\/blobs\/uploads\//, maxBytes: 1 * MiB, status: 413 }]);
      const repo = new RemoteRepository(client, 'quirks/put-limit', { upload: { chunkSize: 1 * MiB } });
      const small = await blob('put-limit-small', 3 * MiB);
      await repo.push(small.desc, small.open());
      assert.equal(await repo.exists(small.desc), true);
      assert.equal(uploadHints(client).preferChunked, true);

      const { client: fresh } = await through([{ kind: 'patch-limit', method: 'PUT', match: /\/blobs\/uploads\//, maxBytes: 1 * MiB, status: 413 }]);
      const big = new RemoteRepository(fresh, 'quirks/put-limit', { upload: { chunkSize: 1 * MiB } });
      const b = await blob('put-limit-big', 6 * MiB);
      const err = await rejects(big.push(b.desc, b.open()), 'UPLOAD_TOO_LARGE');
      assert.match(err.hint ?? '', /again/);
      await big.push(b.desc, b.open());
      assert.ok((await readAll(await big.fetch(b.desc))).equals(b.bytes));
      assert.ok(patches(proxy).length > 0);
    });

    it('a chunk lost on the way (500, no retry in the client) is resent from the offset the registry reports', async () => {
      const { proxy, client } = await through([{ kind: 'status-burst', status: 500, count: 1, method: 'PATCH', match: /\/blobs\/uploads\//, times: 1 }], { raw: true });
      const repo = new RemoteRepository(client, 'quirks/resync', { upload: { mode: 'chunked', chunkSize: 2 * MiB } });
      const b = await blob('resync', 5 * MiB);
      await repo.push(b.desc, b.open());
      assert.ok((await readAll(await repo.fetch(b.desc))).equals(b.bytes));
      const statusChecks = proxy.log.filter((e) => e.method === 'GET' && /\/blobs\/uploads\//.test(e.url));
      assert.equal(statusChecks.length, 1, 'one GET on the upload URL to learn the offset');
    });

    it('follows an upload Location on another origin', async () => {
      const mirror = await startBlobMirror({ target: reg.url });
      proxies.push(mirror);
      const { client } = await through([{ kind: 'location-other-host', to: mirror.url }]);
      const repo = new RemoteRepository(client, 'quirks/location');
      const b = await blob('location', 5 * MiB);
      await repo.push(b.desc, b.open());
      assert.equal(await repo.exists(b.desc), true);
      assert.ok(mirror.requests.some((r) => r.method === 'PUT'), 'the PUT went to the other origin');
    });
  });

  describe('reads', () => {
    let direct: RemoteRepository;
    let b: { desc: Descriptor; open: () => Readable; bytes: Buffer };
    let manifest: { desc: Descriptor; bytes: Buffer };

    before(async () => {
      direct = new RemoteRepository(await clientFor(reg.url, reg.host), 'quirks/reads');
      b = await blob('reads', 3 * MiB + 17);
      await direct.push(b.desc, b.open());
      const cfg = Buffer.from('{}');
      const cfgDesc: Descriptor = { mediaType: MediaType.Empty, digest: sha256(cfg), size: 2 };
      await direct.push(cfgDesc, Readable.from([cfg]));
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config: cfgDesc, layers: [b.desc] }));
      manifest = { desc: { mediaType: MediaType.ImageManifest, digest: sha256(bytes), size: bytes.length }, bytes };
      for (const t of ['a', 'b', 'c', 'd', 'e']) await direct.pushManifest(manifest.desc, manifest.bytes, t);
    });

    it('resolve falls back to GET and hashing when HEAD has no Docker-Content-Digest', async () => {
      const { proxy, client } = await through([{ kind: 'set-header', name: 'docker-content-digest', method: 'HEAD' }]);
      const repo = new RemoteRepository(client, 'quirks/reads');
      const d = await repo.resolve('a');
      assert.equal(d.digest, manifest.desc.digest);
      assert.equal(d.size, manifest.desc.size);
      assert.ok(proxy.log.some((e) => e.method === 'GET' && e.url.endsWith('/manifests/a')));
    });

    it('fetch with an offset from a registry that ignores Range (200): the stream still starts at the offset', async () => {
      const client = await clientFor(reg.url, reg.host);
      const ignoring: RegistryClient = {
        registry: client.registry,
        baseUrl: client.baseUrl,
        request: (r) => {
          const { range: _dropped, ...headers } = r.headers ?? {};
          return client.request({ ...r, headers });
        },
      };
      const repo = new RemoteRepository(ignoring, 'quirks/reads');
      for (const offset of [1, 65536, 2 * MiB + 5]) {
        assert.ok((await readAll(await repo.fetch(b.desc, { offset }))).equals(b.bytes.subarray(offset)), `from ${offset}`);
      }
    });

    it('fetch with an offset through a redirect to another origin keeps the Range', async () => {
      const mirror = await startBlobMirror({ target: reg.url });
      proxies.push(mirror);
      const { client } = await through([{ kind: 'redirect-blob-get', to: mirror.url }]);
      const repo = new RemoteRepository(client, 'quirks/reads');
      const tail = await readAll(await repo.fetch(b.desc, { offset: MiB }));
      assert.ok(tail.equals(b.bytes.subarray(MiB)));
      const got = mirror.requests.find((r) => r.method === 'GET');
      assert.equal(got?.headers.range, `bytes=${MiB}-`);
      assert.equal(got?.status, 206);
    });

    it('listTags follows Link pages (relative and absolute)', async () => {
      for (const absoluteLink of [false, true]) {
        const { proxy, client } = await through([{ kind: 'paginate-tags', pageSize: 2, absoluteLink }]);
        const tags = await new RemoteRepository(client, 'quirks/reads').listTags();
        assert.deepEqual(tags, ['a', 'b', 'c', 'd', 'e']);
        assert.equal(proxy.log.filter((e) => e.url.includes('/tags/list')).length, 3);
      }
    });

    it('listTags refuses a next link on another origin (LINK_CROSS_ORIGIN)', async () => {
      const { client } = await through([{ kind: 'paginate-tags', pageSize: 2 }, { kind: 'cross-origin-link', to: 'http://127.0.0.2:9' }]);
      await rejects(new RemoteRepository(client, 'quirks/reads').listTags(), 'LINK_CROSS_ORIGIN');
    });

    it('listTags stops after maxPages (TOO_MANY_PAGES) and on a repeated URL', async () => {
      const { client } = await through([{ kind: 'paginate-tags', pageSize: 1 }]);
      await rejects(new RemoteRepository(client, 'quirks/reads').listTags({ maxPages: 3 }), 'TOO_MANY_PAGES');
      const loop = await through([{ kind: 'set-header', name: 'link', value: '</v2/quirks/reads/tags/list?n=1000>; rel="next"', match: /\/tags\/list/ }]);
      assert.deepEqual((await new RemoteRepository(loop.client, 'quirks/reads').listTags()).sort(), ['a', 'b', 'c', 'd', 'e']);
      assert.equal(loop.proxy.log.filter((e) => e.url.includes('/tags/list')).length, 1);
    });
  });
});
