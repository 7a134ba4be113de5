/**
 * Issue 5, point 4, manifests and configs: each item of fixtures/hostile/manifests/ is served to
 * the real CLI and refused by `kit pull` and/or `kit unpack` (straight from the registry, and from
 * the local store where the store can hold it) with one clear error, a non-zero exit, nothing
 * written outside the target and the store unchanged.
 *
 * Where each item comes from:
 *  - a real registry (CNCF distribution 2.8), pushed raw by the harness's bare client, for what
 *    distribution stores: configs, layer types, sizes, filepath annotations;
 *  - the same registry behind the fault proxy (corrupt-body) for a layer whose bytes do not
 *    match its digest (no registry stores such a blob);
 *  - a tiny fake registry (./helpers-faults/fake-registry.ts) for manifests distribution refuses
 *    to store: invalid JSON, over 4 MiB, unknown or contradictory media types, a million layers,
 *    bytes that are not what the digest names.
 *
 * `kit pull` is a content-addressed copy that does not interpret configs or layer types, so those
 * items are refused by `kit unpack`, which does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { craftArtifact, putBlob } from '../helpers/craft.js';
import { rawRegistryClient, registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { startFaultProxy, type FaultProxy } from '../integration/harness/fault-proxy.js';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType, type Descriptor } from '../../src/oci/descriptor.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { RegistryClient } from '../../src/registry/types.js';
import { CORPUS, expectRefusal, initStore, rawPushArtifact, workspace, type Workspace } from './helpers-faults/hostile.js';
import { serve, startFakeRegistry, type FakeRegistry } from './helpers-faults/fake-registry.js';

const registrySkip = await registrySkipReason();
const DIR = join(CORPUS, 'manifests');
const OCI_MANIFEST = MediaType.ImageManifest;
const MODELPACK_CONFIG = 'application/vnd.cncf.model.config.v1+json';
const LIMIT = /4194304-byte limit/;

interface Item {
  description?: string;
  mediaType?: string;
  filepath?: string;
  sizeDelta?: number;
  paddingBytes?: number;
  configBytes?: number;
  layers?: number;
}

async function item(name: string): Promise<Item> {
  return JSON.parse(await readFile(join(DIR, name, 'item.json'), 'utf8').catch(() => '{}')) as Item;
}

async function file(name: string, f: string): Promise<Buffer> {
  return readFile(join(DIR, name, f));
}

/** Which commands refuse each item, and how. */
const EXPECTED: Record<string, { pull?: RegExp; unpack?: RegExp; local?: RegExp }> = {
  'manifest-invalid-json': { pull: /manifest sha256:[a-f0-9]{64} is not valid JSON/, unpack: /manifest of .* is not valid JSON/ },
  'manifest-over-4mib': { pull: LIMIT, unpack: LIMIT },
  'manifest-over-4mib-unannounced': { pull: /larger than the 4194304-byte limit/, unpack: /larger than the 4194304-byte limit/ },
  'manifest-unknown-media-type': {
    pull: /has media type application\/vnd\.example\.not-a-manifest\.v1\+json, not a manifest or index/,
    unpack: /has media type application\/vnd\.example\.not-a-manifest\.v1\+json, not an OCI image manifest/,
  },
  'manifest-media-type-mismatch': {
    pull: /was served as application\/vnd\.oci\.image\.manifest\.v1\+json but says it is "application\/vnd\.oci\.image\.index\.v1\+json"/,
    unpack: /is not a valid OCI image manifest: mediaType/,
  },
  'manifest-digest-mismatch': { pull: /hashes to sha256:[a-f0-9]{64}, not sha256:/, unpack: /hashes to sha256:[a-f0-9]{64}, not sha256:/ },
  'config-invalid-json': { unpack: /config of .* is not valid JSON/, local: /config of .* is not valid JSON/ },
  'config-over-4mib': { unpack: /config of .* over the 4194304-byte limit/, local: /config of .* over the 4194304-byte limit/ },
  'layer-unknown-media-type': {
    unpack: /layer 0 of .* has media type "application\/vnd\.example\.evil\.layer\.v1\+script", which kit does not know/,
    local: /layer 0 of .* has media type "application\/vnd\.example\.evil\.layer\.v1\+script", which kit does not know/,
  },
  'layer-media-type-mismatch': { unpack: /layer is corrupt/, local: /layer is corrupt/ },
  'layer-digest-mismatch': { pull: /digest mismatch: expected sha256:[a-f0-9]{64}, got sha256:/, unpack: /digest mismatch: expected sha256:[a-f0-9]{64}, got sha256:/ },
  'layer-size-overstated': { pull: /serves blob sha256:[a-f0-9]{64} as 37 bytes, but the manifest says 1037/, unpack: /as 37 bytes, but the manifest says 1037/ },
  'layer-size-understated': { pull: /serves blob sha256:[a-f0-9]{64} as 37 bytes, but the manifest says 32/, unpack: /as 37 bytes, but the manifest says 32/ },
  'million-layers': { pull: LIMIT, unpack: LIMIT },
  'too-many-layers': {
    pull: /lists 20000 layers, more than the 10000 kit accepts/,
    unpack: /layers: Array must contain at most 10000 element\(s\)/,
    local: /layers: Array must contain at most 10000 element\(s\)/,
  },
  'filepath-escape': { unpack: /unsafe path "\.\.\/\.\.\/kit-hostile-annotation": contains a '\.\.' component/, local: /unsafe path .*'\.\.' component/ },
  'filepath-absolute': { unpack: /unsafe path "\/tmp\/kit-hostile-annotation-absolute": is absolute/, local: /unsafe path .*is absolute/ },
};

// ------------------------------------------------------------------ building the items

/** The manifest documents served by the fake registry, by item. */
async function fakeDocument(name: string): Promise<{ bytes?: Buffer; stream?: { size: number; digest: string; open: () => Readable }; contentType: string; head?: Record<string, string | undefined>; servedAs?: string }> {
  const config: Descriptor = { mediaType: MODELPACK_CONFIG, digest: sha256(Buffer.from('{}')), size: 2 };
  switch (name) {
    case 'manifest-invalid-json':
      return { bytes: await file(name, 'manifest.json'), contentType: OCI_MANIFEST };
    case 'manifest-over-4mib':
    case 'manifest-over-4mib-unannounced': {
      const pad = (await item(name)).paddingBytes!;
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [], annotations: { padding: 'x'.repeat(pad) } }));
      // Unannounced: HEAD says nothing about size or digest, so only the GET body tells.
      return name === 'manifest-over-4mib' ? { bytes, contentType: OCI_MANIFEST } : { bytes, contentType: OCI_MANIFEST, head: { 'content-length': undefined, 'docker-content-digest': undefined } };
    }
    case 'manifest-unknown-media-type':
      return { bytes: await file(name, 'manifest.json'), contentType: 'application/vnd.example.not-a-manifest.v1+json' };
    case 'manifest-media-type-mismatch':
      return { bytes: await file(name, 'manifest.json'), contentType: OCI_MANIFEST };
    case 'manifest-digest-mismatch':
      // Served when asked for the digest of other bytes.
      return { bytes: await file(name, 'manifest.json'), contentType: OCI_MANIFEST, servedAs: sha256(Buffer.from('some other manifest')) };
    case 'million-layers':
      return { stream: await manyLayers((await item(name)).layers!, false), contentType: OCI_MANIFEST };
    case 'too-many-layers':
      return { stream: await manyLayers((await item(name)).layers!, true), contentType: OCI_MANIFEST };
    default:
      throw new Error(`${name} is not served by the fake registry`);
  }
}

/** A manifest of `n` layers, generated as a stream (a million layers is ~130 MB of JSON). */
async function manyLayers(n: number, distinct: boolean): Promise<{ size: number; digest: string; open: () => Readable }> {
  const config = { mediaType: MODELPACK_CONFIG, digest: sha256(Buffer.from('{}')), size: 2 };
  const head = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","artifactType":"application/vnd.cncf.model.manifest.v1+json","config":${JSON.stringify(config)},"layers":[`;
  const layer = (i: number): string =>
    `${i ? ',' : ''}{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"sha256:${distinct ? createHash('sha256').update(String(i)).digest('hex') : 'a'.repeat(64)}","size":1}`;
  const tail = ']}';
  const open = (): Readable =>
    Readable.from(
      (function* () {
        yield Buffer.from(head);
        for (let i = 0; i < n; i += 5000) {
          let s = '';
          for (let j = i; j < Math.min(n, i + 5000); j++) s += layer(j);
          yield Buffer.from(s);
        }
        yield Buffer.from(tail);
      })(),
    );
  const h = createHash('sha256');
  let size = 0;
  for await (const c of open() as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { size, digest: `sha256:${h.digest('hex')}`, open };
}

/** The registry-side items: layers and config pushed raw to the real registry. */
async function registryArtifact(name: string): Promise<{ layers: Array<{ mediaType: string; bytes: Buffer; annotations?: Record<string, string>; size?: number }>; config?: Buffer }> {
  const it = await item(name);
  const annotations = (p: string | undefined): Record<string, string> | undefined => (p === undefined ? undefined : { 'org.cncf.model.filepath': p });
  switch (name) {
    case 'config-invalid-json':
      return { layers: [], config: await file(name, 'config.json') };
    case 'config-over-4mib': {
      const pad = it.configBytes!;
      return { layers: [], config: Buffer.from(JSON.stringify({ descriptor: { name: 'big', description: 'x'.repeat(pad) }, config: {}, modelfs: { type: 'layers', diffIds: [] } })) };
    }
    case 'layer-media-type-mismatch':
      return { layers: [{ mediaType: it.mediaType!, bytes: await file(name, 'layer.tar'), annotations: annotations(it.filepath)! }] };
    case 'layer-size-overstated':
    case 'layer-size-understated': {
      const bytes = await file(name, 'layer.txt');
      return { layers: [{ mediaType: it.mediaType!, bytes, annotations: annotations(it.filepath)!, size: bytes.length + it.sizeDelta! }] };
    }
    default:
      return { layers: [{ mediaType: it.mediaType!, bytes: await file(name, 'layer.txt'), annotations: annotations(it.filepath)! }] };
  }
}

/** The same artifact in a local store (only what a store can hold: digests and sizes true). */
async function localArtifact(ws: Workspace, name: string, ref: string): Promise<void> {
  const root = join(ws.home, 'store');
  if (name === 'too-many-layers') {
    const n = (await item(name)).layers!;
    const layers = Array.from({ length: n }, () => ({ mediaType: 'application/vnd.cncf.model.weight.v1.raw', content: Buffer.from('w') }));
    await craftArtifact(root, ref, layers, { config: { descriptor: { name: 'many' }, config: {}, modelfs: { type: 'layers', diffIds: [] } } });
    return;
  }
  const a = await registryArtifact(name);
  const store = await LocalStore.open(root);
  const layers: Descriptor[] = [];
  for (const l of a.layers) {
    const d = await putBlob(store, l.bytes, l.mediaType);
    layers.push(l.annotations ? { ...d, annotations: l.annotations } : d);
  }
  const config = a.config ?? Buffer.from(JSON.stringify({ descriptor: { name: 'hostile' }, config: {}, modelfs: { type: 'layers', diffIds: layers.map((l) => l.digest) } }));
  const configDesc = await putBlob(store, config, MODELPACK_CONFIG);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/vnd.cncf.model.manifest.v1+json', config: configDesc, layers }));
  await store.tag(await putBlob(store, manifest, OCI_MANIFEST), ref);
}

// ------------------------------------------------------------------ the tests

describe('hostile manifests and configs (fixtures/hostile/manifests)', { concurrency: 3 }, () => {
  let reg: RunningRegistry | undefined;
  let client: RegistryClient;
  let fake: FakeRegistry;
  let corrupting: FaultProxy | undefined;
  /** item -> what the fake registry serves under hostile/<item>. */
  const served = new Map<string, Awaited<ReturnType<typeof fakeDocument>>>();

  before(async () => {
    fake = await startFakeRegistry(async (req, res, url) => {
      const m = /^\/v2\/hostile\/([a-z0-9-]+)\/manifests\/([^/]+)$/.exec(url.pathname);
      if (!m) return;
      const doc = served.get(m[1]!);
      if (!doc) return;
      const digest = doc.bytes ? sha256(doc.bytes) : doc.stream!.digest;
      if (m[2] !== '1' && m[2] !== (doc.servedAs ?? digest)) return;
      const headers: Record<string, string> = { 'content-type': doc.contentType };
      if (!doc.servedAs) headers['docker-content-digest'] = digest;
      const size = doc.bytes ? doc.bytes.length : doc.stream!.size;
      headers['content-length'] = String(size);
      if (req.method === 'HEAD') {
        for (const [k, v] of Object.entries(doc.head ?? {})) if (v === undefined) delete headers[k];
        res.writeHead(200, headers).end();
        return;
      }
      if (doc.bytes) return serve(req, res, doc.bytes, headers);
      res.writeHead(200, headers);
      const body = doc.stream!.open();
      res.once('close', () => body.destroy());
      body.pipe(res);
    });
    if (!registrySkip) {
      reg = await startRegistry();
      client = rawRegistryClient(reg.url);
      // Only the layer's bytes are flipped; the manifest and config arrive intact.
      const layer = sha256(await file('layer-digest-mismatch', 'layer.txt'));
      corrupting = await startFaultProxy({ target: reg.url, rules: [{ kind: 'corrupt-body', atByte: 3, method: 'GET', match: new RegExp(`/blobs/${layer}`), times: Infinity }] });
    }
  });

  after(async () => {
    await corrupting?.stop();
    await fake?.stop();
    await reg?.stop();
  });

  it('the corpus, the README index and this table list the same items', async () => {
    const items = (await readdir(DIR)).sort();
    assert.deepEqual(items, Object.keys(EXPECTED).sort());
    const readme = await readFile(join(CORPUS, 'README.md'), 'utf8');
    for (const i of items) assert.ok(readme.includes(`manifests/${i}`), `README lists manifests/${i}`);
  });

  const FAKE = new Set(['manifest-invalid-json', 'manifest-over-4mib', 'manifest-over-4mib-unannounced', 'manifest-unknown-media-type', 'manifest-media-type-mismatch', 'manifest-digest-mismatch', 'million-layers', 'too-many-layers']);

  for (const [name, expect] of Object.entries(EXPECTED)) {
    const viaFake = FAKE.has(name);
    const skipRegistry = viaFake ? false : registrySkip;

    /** host and reference of the item where kit reads it from. */
    async function source(): Promise<string> {
      if (viaFake) {
        if (!served.has(name)) served.set(name, await fakeDocument(name));
        const doc = served.get(name)!;
        return doc.servedAs ? `${fake.host}/hostile/${name}@${doc.servedAs}` : `${fake.host}/hostile/${name}:1`;
      }
      const a = await registryArtifact(name);
      await rawPushArtifact(client, `hostile/${name}`, '1', a.layers, a.config ? { config: a.config } : {});
      // The bytes of this one are flipped on the way, by the fault proxy.
      return name === 'layer-digest-mismatch' ? `${corrupting!.host}/hostile/${name}:1` : `${reg!.host}/hostile/${name}:1`;
    }

    if (expect.pull) {
      it(`${name}: refused by kit pull`, { skip: skipRegistry }, async () => {
        const ref = await source();
        const ws = await workspace();
        await initStore(ws);
        await expectRefusal(ws, ['pull', ref], expect.pull!, `${name} (pull)`);
      });
    }
    if (expect.unpack) {
      it(`${name}: refused by kit unpack from the registry`, { skip: skipRegistry }, async () => {
        const ref = await source();
        const ws = await workspace();
        await initStore(ws);
        await expectRefusal(ws, ['unpack', ref, '-d', ws.dest], expect.unpack!, `${name} (unpack)`);
      });
    }
    if (expect.local) {
      it(`${name}: refused by kit unpack from the local store`, async () => {
        const ws = await workspace();
        await localArtifact(ws, name, `hostile.example/manifests/${name}:1`);
        await expectRefusal(ws, ['unpack', `hostile.example/manifests/${name}:1`, '-d', ws.dest], expect.local!, `${name} (local)`);
      });
    }
  }
});
