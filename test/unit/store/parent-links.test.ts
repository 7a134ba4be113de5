/**
 * The local store and artifacts built on other artifacts: a child records its parent
 * (ml.kitops.modelkit.parent) and lists the parent's layers without holding them. The store
 * accepts it when it has the parent's manifest (and config), keeps those alive with the child,
 * and reports the absent layers as borrowed, not as damage.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KitError } from '../../../src/errors.js';
import { MediaType, type Descriptor, type ImageManifest } from '../../../src/oci/descriptor.js';
import { LocalStore } from '../../../src/store/local-store.js';
import { removeArtifacts } from '../../../src/artifact/local.js';
import { tempDir } from '../../helpers/tmp.js';
import { ARTIFACT_TYPE, descOf, pushBytes } from './fixtures.js';

const PARENT = 'ml.kitops.modelkit.parent';

async function newStore(): Promise<LocalStore> {
  return LocalStore.open(join(await tempDir('kit-store-'), 'store'));
}

function manifestOf(config: Descriptor, layers: Descriptor[], annotations?: Record<string, string>): ImageManifest {
  return { schemaVersion: 2, mediaType: MediaType.ImageManifest, artifactType: ARTIFACT_TYPE, config, layers, ...(annotations ? { annotations } : {}) };
}

/**
 * A parent whose manifest and config are in the store but whose layers are not (as `kit pack`
 * leaves it when the parent is in a registry), and a child listing the parent's weight layer
 * plus one layer of its own.
 */
async function parentAndChild(store: LocalStore, opts: { storeParentManifest?: boolean; storeOwnLayer?: boolean } = {}) {
  const weight = descOf(Buffer.from('parent weights'));
  const doc = descOf(Buffer.from('parent readme'), 'application/vnd.cncf.model.doc.v1.raw');
  const parentConfig = await store.writeJson({ descriptor: { name: 'base' } }, 'application/vnd.cncf.model.config.v1+json');
  const parentDoc = manifestOf(parentConfig, [weight, doc]);
  const parent = opts.storeParentManifest === false ? descOf(Buffer.from(JSON.stringify(parentDoc)), MediaType.ImageManifest) : await store.writeJson(parentDoc, MediaType.ImageManifest);
  const ownBytes = Buffer.from('child adapter');
  const own = opts.storeOwnLayer === false ? descOf(ownBytes) : await pushBytes(store, ownBytes);
  const childConfig = await store.writeJson({ descriptor: { name: 'tuned' } }, 'application/vnd.cncf.model.config.v1+json');
  const child = await store.writeJson(manifestOf(childConfig, [weight, own], { [PARENT]: `registry.example.com/base@${parent.digest}` }), MediaType.ImageManifest);
  return { weight, doc, parent, parentConfig, own, child, childConfig };
}

function expectCode(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof KitError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };
}

describe('local store: artifacts built on other artifacts', () => {
  it('tags a child whose parent layers are absent when the parent manifest is here, and reports them as borrowed', async () => {
    const store = await newStore();
    const a = await parentAndChild(store);
    await store.tag(a.child, 'registry.example.com/tuned:1');
    const report = await store.verify();
    assert.equal(report.clean, true, JSON.stringify(report.problems));
    assert.deepEqual(report.borrowed, { blobs: 1, bytes: a.weight.size }, 'the weight the child lists; the parent\'s readme is nobody\'s business here');
    assert.deepEqual(report.unreferenced, { blobs: 0, bytes: 0 }, 'the parent manifest and config are kept by the child');
  });

  it('refuses a child whose parent manifest is missing, naming it', async () => {
    const store = await newStore();
    const a = await parentAndChild(store, { storeParentManifest: false });
    await assert.rejects(store.tag(a.child, 'registry.example.com/tuned:1'), (err: unknown) => {
      expectCode('BLOB_MISSING')(err);
      assert.match((err as Error).message, new RegExp(`manifest ${a.parent.digest} of the parent of manifest ${a.child.digest}`));
      return true;
    });
  });

  it('refuses a child that lacks a layer of its own (not listed by the parent)', async () => {
    const store = await newStore();
    const a = await parentAndChild(store, { storeOwnLayer: false });
    await assert.rejects(store.tag(a.child, 'registry.example.com/tuned:1'), (err: unknown) => {
      expectCode('BLOB_MISSING')(err);
      assert.match((err as Error).message, new RegExp(`layer ${a.own.digest}`));
      return true;
    });
  });

  it('gc keeps the parent manifest and config while the child is tagged; removing the child frees them', async () => {
    const store = await newStore();
    const a = await parentAndChild(store);
    await store.tag(a.child, 'registry.example.com/tuned:1');
    const gc = await store.collectGarbage({ graceMs: 0, now: true });
    assert.deepEqual(gc.blobs.removed, []);
    const removed = await removeArtifacts(store, { ref: 'registry.example.com/tuned:1', all: false, force: false });
    assert.equal(removed.removedBlobs, 5, 'child manifest, config and own layer; parent manifest and config');
    assert.deepEqual(await readdir(join(store.root, 'blobs', 'sha256')), []);
  });

  it('a parent that is tagged and complete stays whole when its child goes', async () => {
    const store = await newStore();
    const a = await parentAndChild(store);
    await pushBytes(store, Buffer.from('parent weights'));
    await pushBytes(store, Buffer.from('parent readme'), 'application/vnd.cncf.model.doc.v1.raw');
    await store.tag(a.parent, 'registry.example.com/base:1');
    await store.tag(a.child, 'registry.example.com/tuned:1');
    assert.deepEqual((await store.verify()).borrowed, { blobs: 0, bytes: 0 });
    await removeArtifacts(store, { ref: 'registry.example.com/tuned:1', all: false, force: false });
    const report = await store.verify();
    assert.equal(report.clean, true);
    assert.equal(report.blobs, 4, 'the parent: manifest, config, two layers');
  });
});
