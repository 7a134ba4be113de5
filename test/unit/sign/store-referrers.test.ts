import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import type { Digest } from '../../../src/oci/digest.js';
import { join } from 'node:path';
import { KitError } from '../../../src/errors.js';
import { ReferrerAnnotation } from '../../../src/store/local-store.js';
import { removeArtifacts } from '../../../src/artifact/local.js';
import { attachmentSite } from '../../../src/sign/attachments.js';
import { signArtifact } from '../../../src/sign/sign.js';
import { readManifest } from '../../../src/sign/attachments.js';
import { makeArtifact } from '../store/fixtures.js';
import { signingFixture } from './helpers.js';

const NAME = 'registry.example.com/team/model';

async function blobCount(root: string): Promise<number> {
  return (await readdir(join(root, 'blobs', 'sha256'))).length;
}

describe('referrers in the local store', () => {
  it('keeps them in index.json as untagged entries naming their subject; kit list shows tags only', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    const { signature } = await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const index = JSON.parse(await readFile(join(f.store.root, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }> };
    const entry = index.manifests.find((m) => m.digest === signature)!;
    assert.equal(entry.annotations?.['org.opencontainers.image.ref.name'], undefined);
    assert.equal(entry.annotations?.[ReferrerAnnotation.Subject], f.subject.digest);
    assert.equal(entry.artifactType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.deepEqual((await f.store.listTags()).map((t) => t.ref), [f.ref]);
    const refs = await f.store.referrers(f.subject);
    assert.equal(refs.length, 1);
    assert.equal(refs[0]!.annotations?.[ReferrerAnnotation.Subject], undefined, 'the store-internal annotation is not shown');
    assert.equal((await f.store.referrers(f.subject, { artifactType: 'application/other' })).length, 0);
  });

  it('refuses a referrer whose manifest does not name the subject, or whose subject is not here', async () => {
    const f = await signingFixture();
    const other = await signingFixture('registry.example.com/team/other:1', ['other']);
    const site = attachmentSite(other.store);
    await signArtifact(site, other.ref, NAME, { key: other.privateKey });
    const [att] = await site.list(other.subject);
    const bytes = await readFile(other.store.blobPath(att!.descriptor.digest));
    await assert.rejects(f.store.pushReferrer(att!.descriptor, bytes, f.subject), (e: unknown) => e instanceof KitError && e.code === 'REFERRER_INVALID');
    // Naming a subject the store does not have: its blobs are not here either, and nothing is recorded.
    await assert.rejects(f.store.pushReferrer(att!.descriptor, bytes, other.subject), (e: unknown) => e instanceof KitError && e.code === 'BLOB_MISSING');
    assert.equal((await f.store.referrers(other.subject)).length, 0);
  });

  it('kit remove: removing one of two tags keeps the referrers; removing the last drops them and their blobs', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    await signArtifact(site, f.ref, NAME, { key: f.privateKey, legacy: true });
    await f.store.tag(f.subject, `${NAME}:latest`);
    // Another artifact with its own signature, untouched throughout.
    const { manifest: b } = await makeArtifact(f.store, ['b-weights']);
    await f.store.tag(b, `${NAME}:b`);
    await signArtifact(site, `${NAME}:b`, NAME, { key: f.privateKey });
    const before = await blobCount(f.store.root);
    // Every blob the artifact's referrers use.
    const referrerBlobs = new Set<string>();
    for (const a of await site.list(f.subject)) {
      referrerBlobs.add(a.descriptor.digest);
      const m = await readManifest(f.store, a.descriptor, 'referrer');
      for (const d of [m.config, ...m.layers]) referrerBlobs.add(d.digest);
    }

    await removeArtifacts(f.store, { ref: f.ref, all: false, force: false });
    assert.equal((await site.list(f.subject)).length, 2, 'still tagged: referrers kept');
    assert.equal(await blobCount(f.store.root), before);

    const r = await removeArtifacts(f.store, { ref: `${NAME}:latest`, all: false, force: false });
    assert.equal((await f.store.referrers(f.subject)).length, 0);
    assert.equal(await f.store.attachedByTag(f.subject, `sha256-${f.subject.digest.slice(7)}.sig`), undefined);
    assert.ok(r.removedBlobs > 0);
    assert.equal((await site.list(b)).length, 1, "the other artifact's signature stays");
    const v = await f.store.verify();
    assert.equal(v.clean, true, JSON.stringify(v.problems));
    const kept = await f.store.referencedBlobs();
    for (const d of referrerBlobs) {
      const present = await stat(f.store.blobPath(d as Digest)).then(() => true, () => false);
      assert.ok(kept.has(d as Digest) || !present, `${d} of a removed referrer is left behind`);
    }
    assert.ok(!kept.has(f.subject.digest));
  });

  it('kit store gc: referrers of an artifact whose tags are gone go with it', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const { manifest: keep } = await makeArtifact(f.store, ['keep']);
    await f.store.tag(keep, `${NAME}:keep`);
    await signArtifact(site, `${NAME}:keep`, NAME, { key: f.privateKey });
    await f.store.untag(f.ref); // untagged without the cleanup `kit remove` does
    await f.store.collectGarbage({ graceMs: 0, now: true });
    assert.equal((await f.store.referrers(f.subject)).length, 0);
    assert.equal((await f.store.referrers(keep)).length, 1);
    const v = await f.store.verify();
    assert.equal(v.clean, true, JSON.stringify(v.problems));
    assert.equal(v.unreferenced.blobs, 0);
  });
});
