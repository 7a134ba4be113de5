import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { KitError } from '../../../src/errors.js';
import { sha256 } from '../../../src/oci/digest.js';
import { Annotation, MediaType, type Descriptor, type ImageIndex } from '../../../src/oci/descriptor.js';
import { LocalStore } from '../../../src/store/local-store.js';
import { tempDir } from '../../helpers/tmp.js';
import { ARTIFACT_TYPE, descOf, makeArtifact, pushBytes } from './fixtures.js';

async function newStore(): Promise<LocalStore> {
  return LocalStore.open(join(await tempDir('kit-store-'), 'store'));
}

async function readIndex(store: LocalStore): Promise<ImageIndex> {
  return JSON.parse(await readFile(join(store.root, 'index.json'), 'utf8')) as ImageIndex;
}

async function blobNames(store: LocalStore): Promise<string[]> {
  return readdir(join(store.root, 'blobs', 'sha256'));
}

async function ingestNames(store: LocalStore): Promise<string[]> {
  return readdir(join(store.root, 'ingest'));
}

function isKitError(code: string) {
  return (err: unknown) => err instanceof KitError && err.code === code;
}

describe('LocalStore.open', () => {
  it('creates a valid OCI image layout', async () => {
    const store = await newStore();
    assert.deepEqual(JSON.parse(await readFile(join(store.root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    assert.deepEqual(await readIndex(store), { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [] });
    assert.ok((await stat(join(store.root, 'blobs', 'sha256'))).isDirectory());
    assert.ok((await stat(join(store.root, 'ingest'))).isDirectory());
    assert.deepEqual(await ingestNames(store), []);
  });

  it('opens an existing store without touching it, and survives concurrent first opens', async () => {
    const root = join(await tempDir('kit-store-'), 'store');
    const stores = await Promise.all(Array.from({ length: 8 }, () => LocalStore.open(root)));
    const first = stores[0]!;
    await makeArtifact(first, ['x']).then(({ manifest }) => first.tag(manifest, 'example.com/a:1'));
    const again = await LocalStore.open(root);
    assert.equal((await again.listTags()).length, 1);
    assert.deepEqual(await ingestNames(again), []);
  });

  it('refuses a corrupt index.json with STORE_CORRUPT naming the file', async () => {
    const store = await newStore();
    await writeFile(join(store.root, 'index.json'), '{"schemaVersion": 2, "manifests": [');
    await assert.rejects(store.listTags(), (err: unknown) => {
      assert.ok(err instanceof KitError);
      assert.equal(err.code, 'STORE_CORRUPT');
      assert.match(err.message, /index\.json/);
      assert.ok(err.hint);
      return true;
    });
    const report = await store.verify();
    assert.equal(report.ok, false);
    assert.equal(report.problems[0]?.kind, 'bad-index');
  });

  it('reports STORE_READONLY with the path when the folder cannot be written', { skip: process.getuid?.() === 0 && 'root ignores permissions' }, async () => {
    const parent = await tempDir('kit-store-');
    await chmod(parent, 0o555);
    try {
      await assert.rejects(LocalStore.open(join(parent, 'store')), (err: unknown) => {
        assert.ok(err instanceof KitError);
        assert.equal(err.code, 'STORE_READONLY');
        assert.match(err.message, /store/);
        assert.match(err.hint ?? '', /KIT_HOME/);
        return true;
      });
    } finally {
      await chmod(parent, 0o755);
    }
  });

  it('reads a store it cannot write, and refuses writes with STORE_READONLY', { skip: process.getuid?.() === 0 && 'root ignores permissions' }, async () => {
    const store = await newStore();
    const { manifest } = await makeArtifact(store, ['a']);
    await store.tag(manifest, 'ro:1');
    const dirs = [store.root, join(store.root, 'blobs', 'sha256'), join(store.root, 'ingest')];
    for (const d of dirs) await chmod(d, 0o555);
    try {
      const again = await LocalStore.open(store.root);
      assert.deepEqual((await again.listTags()).map((t) => t.ref), ['ro:1']);
      await assert.rejects(again.tag(manifest, 'ro:2'), isKitError('STORE_READONLY'));
      await assert.rejects(again.writeJson({ new: 1 }, 'application/json'), isKitError('STORE_READONLY'));
    } finally {
      for (const d of dirs) await chmod(d, 0o755);
    }
  });
});

describe('LocalStore.push', () => {
  it('stores verified content under blobs/sha256/<hex>', async () => {
    const store = await newStore();
    const bytes = Buffer.from('weights');
    const desc = await pushBytes(store, bytes);
    assert.deepEqual(await readFile(store.blobPath(desc.digest)), bytes);
    assert.equal((await stat(store.blobPath(desc.digest))).mode & 0o777, 0o444);
    assert.equal(await store.exists(desc), true);
    assert.deepEqual(await ingestNames(store), []);
  });

  const bad: Array<[string, (bytes: Buffer) => Descriptor, string]> = [
    ['a wrong digest', (b) => ({ ...descOf(b), digest: sha256('other') }), 'DIGEST_MISMATCH'],
    ['a wrong (larger) size', (b) => ({ ...descOf(b), size: b.length + 1 }), 'SIZE_MISMATCH'],
    ['content longer than its size', (b) => ({ ...descOf(b), size: b.length - 3 }), 'SIZE_MISMATCH'],
  ];
  for (const [what, descFor, code] of bad) {
    it(`refuses ${what} and leaves nothing behind`, async () => {
      const store = await newStore();
      const bytes = Buffer.from('some layer content');
      await assert.rejects(store.push(descFor(bytes), Readable.from([bytes])), isKitError(code));
      assert.deepEqual(await blobNames(store), []);
      assert.deepEqual(await ingestNames(store), []);
    });
  }

  it('skips content that is already stored, without reading it', async () => {
    const store = await newStore();
    const bytes = Buffer.from('already here');
    const desc = await pushBytes(store, bytes);
    let read = false;
    const content = new Readable({
      read() {
        read = true;
        this.destroy(new Error('should not be read'));
      },
    });
    await store.push(desc, content);
    assert.equal(read, false);
    assert.equal(content.destroyed, true);
  });

  it('rewrites a stored blob of the wrong size (a torn copy)', async () => {
    const store = await newStore();
    const bytes = Buffer.from('full content');
    const desc = await pushBytes(store, bytes);
    await rm(store.blobPath(desc.digest));
    await writeFile(store.blobPath(desc.digest), 'full');
    assert.equal(await store.exists(desc), false);
    await store.push(desc, Readable.from([bytes]));
    assert.deepEqual(await readFile(store.blobPath(desc.digest)), bytes);
  });
});

describe('LocalStore fetch, writeJson, readJson', () => {
  it('fetches a blob, from an offset too, and NOT_FOUND when missing', async () => {
    const store = await newStore();
    const desc = await pushBytes(store, Buffer.from('0123456789'));
    assert.equal(await text(await store.fetch(desc)), '0123456789');
    assert.equal(await text(await store.fetch(desc, { offset: 4 })), '456789');
    await assert.rejects(store.fetch(descOf(Buffer.from('nope'))), (err: unknown) => {
      return err instanceof KitError && err.code === 'NOT_FOUND' && err.exitCode === 3;
    });
  });

  it('writes canonical JSON (no spaces) and carries the artifactType of manifests', async () => {
    const store = await newStore();
    const { manifest, config } = await makeArtifact(store, ['a']);
    const bytes = await readFile(store.blobPath(manifest.digest), 'utf8');
    assert.equal(bytes, JSON.stringify(JSON.parse(bytes)));
    assert.equal(manifest.artifactType, ARTIFACT_TYPE);
    assert.equal(config.artifactType, undefined);
    const again = await store.writeJson({ name: 'model' }, config.mediaType, { note: 'x' });
    assert.equal(again.digest, config.digest);
    assert.deepEqual(again.annotations, { note: 'x' });
  });

  it('readJson refuses oversized, size-mismatched, corrupt and non-JSON blobs', async () => {
    const store = await newStore();
    const json = await store.writeJson({ hello: 'world' }, 'application/json');
    assert.deepEqual(await store.readJson(json), { hello: 'world' });
    await assert.rejects(store.readJson(json, 5), isKitError('BLOB_TOO_LARGE'));
    await assert.rejects(store.readJson({ ...json, size: json.size - 1 }), isKitError('SIZE_MISMATCH'));
    await assert.rejects(store.readJson({ ...json, size: json.size + 1 }), isKitError('SIZE_MISMATCH'));

    const notJson = await pushBytes(store, Buffer.from('not json'), 'application/json');
    await assert.rejects(store.readJson(notJson), isKitError('JSON_INVALID'));

    await flipFirstByte(store, json);
    await assert.rejects(store.readJson(json), isKitError('DIGEST_MISMATCH'));
  });
});

describe('LocalStore tags', () => {
  it('tags, resolves, lists and untags', async () => {
    const store = await newStore();
    const a = await makeArtifact(store, ['a']);
    const b = await makeArtifact(store, ['b'], { name: 'b' });
    await store.tag(a.manifest, 'registry.example.com/team/model:2');
    await store.tag(b.manifest, 'registry.example.com/team/model:1');

    const resolved = await store.resolve('registry.example.com/team/model:2');
    assert.deepEqual(resolved, {
      mediaType: MediaType.ImageManifest,
      digest: a.manifest.digest,
      size: a.manifest.size,
      artifactType: ARTIFACT_TYPE,
    });
    assert.deepEqual(
      (await store.listTags()).map((t) => [t.ref, t.descriptor.digest]),
      [
        ['registry.example.com/team/model:1', b.manifest.digest],
        ['registry.example.com/team/model:2', a.manifest.digest],
      ],
    );
    const entry = (await readIndex(store)).manifests.find((e) => e.digest === a.manifest.digest);
    assert.equal(entry?.annotations?.[Annotation.RefName], 'registry.example.com/team/model:2');
    assert.equal(entry?.artifactType, ARTIFACT_TYPE);

    // Re-tagging moves the tag: one entry per ref name.
    await store.tag(b.manifest, 'registry.example.com/team/model:2');
    assert.equal((await store.resolve('registry.example.com/team/model:2')).digest, b.manifest.digest);
    assert.equal((await readIndex(store)).manifests.length, 2);

    const removed = await store.untag('registry.example.com/team/model:2');
    assert.equal(removed?.digest, b.manifest.digest);
    assert.equal(await store.untag('registry.example.com/team/model:2'), undefined);
    await assert.rejects(store.resolve('registry.example.com/team/model:2'), (err: unknown) => {
      return err instanceof KitError && err.code === 'NOT_FOUND' && err.exitCode === 3 && err.message.includes('team/model:2');
    });
    assert.deepEqual((await store.listTags()).map((t) => t.ref), ['registry.example.com/team/model:1']);
  });

  it('keeps entries and annotations written by other tools', async () => {
    const store = await newStore();
    const a = await makeArtifact(store, ['a']);
    const foreign: Descriptor[] = [
      { ...a.manifest, annotations: { [Annotation.RefName]: 'other:1', 'com.example.note': 'keep me' } },
      { mediaType: a.manifest.mediaType, digest: a.manifest.digest, size: a.manifest.size },
    ];
    await writeFile(join(store.root, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: foreign }));
    await store.tag(a.manifest, 'mine:1');
    const index = await readIndex(store);
    assert.deepEqual(index.manifests.slice(0, 2), foreign);
    assert.deepEqual((await store.resolve('other:1')).annotations, { 'com.example.note': 'keep me' });
  });

  it('refuses to tag when a layer, the config or a child manifest is missing', async () => {
    const store = await newStore();
    const { manifest, layers, config } = await makeArtifact(store, ['kept', 'lost']);
    await rm(store.blobPath(layers[1]!.digest));
    await assert.rejects(store.tag(manifest, 'x:1'), (err: unknown) => {
      return err instanceof KitError && err.code === 'BLOB_MISSING' && err.message.includes(layers[1]!.digest);
    });
    assert.deepEqual((await readIndex(store)).manifests, []);

    const other = await makeArtifact(store, ['only'], { name: 'other' });
    const index = await store.writeJson(
      { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [manifest, other.manifest] },
      MediaType.ImageIndex,
    );
    await assert.rejects(store.tag(index, 'x:index'), isKitError('BLOB_MISSING'));
    await pushBytes(store, Buffer.from('lost'));
    await store.tag(index, 'x:index');
    assert.equal((await store.resolve('x:index')).mediaType, MediaType.ImageIndex);

    await rm(store.blobPath(config.digest));
    await assert.rejects(store.tag(manifest, 'x:2'), isKitError('BLOB_MISSING'));
    await assert.rejects(store.tag(descOf(Buffer.from('{}'), MediaType.ImageManifest), 'x:3'), isKitError('BLOB_MISSING'));
  });

  it('resolves a digest, bare or after @, from the manifest blob itself', async () => {
    const store = await newStore();
    const { manifest } = await makeArtifact(store, ['a']);
    const expected = { mediaType: MediaType.ImageManifest, digest: manifest.digest, size: manifest.size, artifactType: ARTIFACT_TYPE };
    assert.deepEqual(await store.resolve(manifest.digest), expected);
    assert.deepEqual(await store.resolve(`registry.example.com/any/repo:tag@${manifest.digest}`), expected);
    const unknown = sha256('unknown');
    await assert.rejects(store.resolve(`r/x@${unknown}`), (err: unknown) => {
      return err instanceof KitError && err.code === 'NOT_FOUND' && err.message.includes(unknown);
    });
    await assert.rejects(store.resolve('never-tagged:1'), isKitError('NOT_FOUND'));
  });

  it('takes over a lock left behind by a dead process once it is stale', async () => {
    const store = await newStore();
    const { manifest } = await makeArtifact(store, ['a']);
    const lockDir = join(store.root, 'index.json.lock');
    await mkdir(lockDir);
    const old = new Date(Date.now() - 60_000);
    await utimes(lockDir, old, old);
    await store.tag(manifest, 'after-crash:1');
    assert.equal((await store.resolve('after-crash:1')).digest, manifest.digest);
    await assert.rejects(stat(lockDir), { code: 'ENOENT' });
  });

  it('updateIndex returns what the function returns and leaves an unchanged index alone', async () => {
    const store = await newStore();
    const before = (await stat(join(store.root, 'index.json'))).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(await store.updateIndex((index) => index.manifests.length), 0);
    assert.equal((await stat(join(store.root, 'index.json'))).mtimeMs, before);
  });

  it('serialises concurrent tags within one process', async () => {
    const store = await newStore();
    const { manifest } = await makeArtifact(store, ['a']);
    await Promise.all(Array.from({ length: 40 }, (_, i) => store.tag(manifest, `local/m:${i}`)));
    assert.equal((await store.listTags()).length, 40);
  });
});

describe('LocalStore.removeUnreferenced', () => {
  it('removes what no tag reaches and keeps shared blobs', async () => {
    const store = await newStore();
    const a = await makeArtifact(store, ['shared', 'only-a'], { name: 'a' });
    const b = await makeArtifact(store, ['shared', 'only-b'], { name: 'b' });
    await store.tag(a.manifest, 'm:a');
    await store.tag(b.manifest, 'm:b');
    const orphan = await pushBytes(store, Buffer.from('orphan'));

    assert.deepEqual(await store.removeUnreferenced(), { removed: [orphan.digest], bytes: orphan.size });

    await store.untag('m:a');
    // Limited to candidates: the orphaned config is left alone when not named.
    const candidates = [a.manifest.digest, ...a.layers.map((l) => l.digest)];
    const result = await store.removeUnreferenced({ candidates });
    assert.deepEqual(new Set(result.removed), new Set([a.manifest.digest, a.layers[1]!.digest]));
    assert.equal(result.bytes, a.manifest.size + a.layers[1]!.size);
    assert.equal(await store.exists(a.layers[0]!), true, 'the shared layer stays');
    assert.equal(await store.exists(a.config), true, 'not a candidate');

    assert.deepEqual((await store.removeUnreferenced()).removed, [a.config.digest]);
    assert.equal((await store.verify()).ok, true);
    assert.equal((await store.referencedBlobs()).size, 4);
  });

  it('follows index children', async () => {
    const store = await newStore();
    const a = await makeArtifact(store, ['a']);
    const index = await store.writeJson({ schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [a.manifest] }, MediaType.ImageIndex);
    await store.tag(index, 'multi:1');
    assert.deepEqual(
      await store.referencedBlobs(),
      new Set([index.digest, a.manifest.digest, a.config.digest, a.layers[0]!.digest]),
    );
    assert.deepEqual((await store.removeUnreferenced()).removed, []);
  });
});

describe('LocalStore.verify', () => {
  it('passes a sound store and counts its blobs', async () => {
    const store = await newStore();
    const { manifest } = await makeArtifact(store, ['a', 'bb']);
    await store.tag(manifest, 'v:1');
    const report = await store.verify();
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    assert.equal(report.blobs, 4);
  });

  it('finds a corrupted blob, a missing blob and an ingest leftover', async () => {
    const store = await newStore();
    const { manifest, layers } = await makeArtifact(store, ['flip me', 'delete me']);
    await store.tag(manifest, 'v:1');
    await flipFirstByte(store, layers[0]!);
    await rm(store.blobPath(layers[1]!.digest));
    const leftover = store.ingestPath();
    await writeFile(leftover, 'partial');

    const report = await store.verify();
    assert.equal(report.ok, false);
    const byKind = (kind: string) => report.problems.filter((p) => p.kind === kind);
    assert.deepEqual(byKind('corrupt-blob').map((p) => p.digest), [layers[0]!.digest]);
    assert.deepEqual(byKind('missing-blob').map((p) => p.digest), [layers[1]!.digest]);
    assert.deepEqual(byKind('ingest-leftover').map((p) => p.path), [leftover]);
    assert.equal(report.problems.length, 3);
  });
});

async function flipFirstByte(store: LocalStore, desc: Descriptor): Promise<void> {
  const path = store.blobPath(desc.digest);
  const bytes = await readFile(path);
  bytes[0] = bytes[0]! ^ 0xff;
  await chmod(path, 0o644);
  await writeFile(path, bytes);
}
