import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { KitError } from '../../../src/errors.js';
import { sha256 } from '../../../src/oci/digest.js';
import { MediaType, type ImageManifest } from '../../../src/oci/descriptor.js';
import { attachmentSite, readManifest } from '../../../src/sign/attachments.js';
import { signArtifact, attachManifest } from '../../../src/sign/sign.js';
import { attestArtifact } from '../../../src/sign/attest.js';
import { verifyArtifact, VerifyError } from '../../../src/sign/verify.js';
import { makeArtifact } from '../store/fixtures.js';
import { ReferrerAnnotation } from '../../../src/store/local-store.js';
import { signingFixture } from './helpers.js';
import { tempDir } from '../../helpers/tmp.js';
import { join } from 'node:path';

const NAME = 'registry.example.com/team/model';

function refused(re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof VerifyError, `expected VERIFY_FAILED, got ${String(err)}`);
    assert.match(err.message, re);
    return true;
  };
}

describe('kit verify (local store)', () => {
  it('verifies a bundle signature and a legacy signature; --json reports both', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    const a = await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const b = await signArtifact(site, f.ref, NAME, { key: f.privateKey, legacy: true });
    assert.equal(a.format, 'bundle');
    assert.equal(b.tag, `sha256-${f.subject.digest.slice(7)}.sig`);
    const r = await verifyArtifact(site, f.ref, { keys: [f.publicKey] });
    assert.ok(r.ok);
    assert.equal(r.digest, f.subject.digest);
    assert.deepEqual(r.verified.map((i) => `${i.format}:${i.kind}`).sort(), ['bundle:signature', 'legacy:signature']);
    assert.deepEqual(r.rejected, []);
  });

  it('writes the bundle referrer as cosign lays it out (BUNDLE_SPEC.md)', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    const { signature } = await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const [ref] = await site.list(f.subject);
    assert.equal(ref!.descriptor.digest, signature);
    const m = await readManifest(f.store, ref!.descriptor, 'referrer');
    assert.equal(m.artifactType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.deepEqual(m.config, { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 });
    assert.equal(m.layers.length, 1);
    assert.equal(m.layers[0]!.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.equal(m.layers[0]!.annotations?.['org.opencontainers.image.title'], `sha256-${m.layers[0]!.digest.slice(7)}.sigstore.json`);
    assert.deepEqual(m.subject, { mediaType: MediaType.ImageManifest, digest: f.subject.digest, size: f.subject.size });
    assert.equal(m.annotations?.['dev.sigstore.bundle.content'], 'dsse-envelope');
    assert.equal(m.annotations?.['dev.sigstore.bundle.predicateType'], 'https://sigstore.dev/cosign/sign/v1');
    assert.match(m.annotations?.['org.opencontainers.image.created'] ?? '', /^\d{4}-\d\d-\d\dT/);
  });

  it('adds a second legacy signature to the same .sig manifest (as cosign does)', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey, legacy: true });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await signArtifact(site, f.ref, NAME, { key: other.privateKey, legacy: true });
    const sig = (await site.list(f.subject)).find((a) => a.tag?.endsWith('.sig'))!;
    assert.equal((await readManifest(f.store, sig.descriptor, 'sig')).layers.length, 2);
    assert.ok((await verifyArtifact(site, f.ref, { keys: [other.publicKey] })).ok);
    assert.ok((await verifyArtifact(site, f.ref, { keys: [f.publicKey] })).ok);
  });

  it('refuses an artifact with nothing attached, saying so', async () => {
    const f = await signingFixture();
    await assert.rejects(verifyArtifact(attachmentSite(f.store), f.ref, { keys: [f.publicKey] }), refused(/no signature found for/));
  });

  it('refuses a wrong key, with the reason for each candidate', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    await signArtifact(site, f.ref, NAME, { key: f.privateKey, legacy: true });
    const wrong = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const err = await verifyArtifact(site, f.ref, { keys: [wrong.publicKey] }).catch((e: unknown) => e);
    assert.ok(err instanceof VerifyError);
    assert.equal(err.report.rejected.length, 2);
    for (const i of err.report.rejected) assert.match(i.reason!, /does not verify with the given key/);
    assert.equal(err.exitCode, 1);
  });

  it('refuses a manifest tampered with in the store (its content no longer matches its digest)', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const path = f.store.blobPath(f.subject.digest);
    await chmod(path, 0o644);
    await writeFile(path, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config: {}, layers: [] }).padEnd(f.subject.size, ' ')));
    await assert.rejects(verifyArtifact(site, f.ref, { keys: [f.publicKey] }), (err: unknown) => err instanceof KitError && err.code === 'DIGEST_MISMATCH' && /altered/.test(err.message));
  });

  it('refuses a signature made for another digest (a valid referrer moved onto another manifest)', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    // A different artifact B, and a statement signed for the first artifact A attached to B.
    const { manifest: b } = await makeArtifact(f.store, ['other weights']);
    await f.store.tag(b, 'registry.example.com/team/model:evil');
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const original = await readManifest(f.store, (await site.list(f.subject))[0]!.descriptor, 'referrer');
    const moved: ImageManifest = { ...original, subject: { mediaType: b.mediaType, digest: b.digest, size: b.size } };
    await attachManifest(site, b, moved, []);
    await assert.rejects(verifyArtifact(site, 'registry.example.com/team/model:evil', { keys: [f.publicKey] }), refused(new RegExp(`it is for ${f.subject.digest}, not ${b.digest}`)));
  });

  it('refuses a referrer whose subject field names another manifest (a forged referrers index)', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    const { manifest: b } = await makeArtifact(f.store, ['b']);
    await f.store.tag(b, 'registry.example.com/team/model:b');
    await signArtifact(site, 'registry.example.com/team/model:b', NAME, { key: f.privateKey });
    const [signedB] = await site.list(b);
    // The index lists B's signature under A, as a forged fallback index in a registry could.
    await f.store.updateIndex((index) => {
      index.manifests.push({ ...signedB!.descriptor, annotations: { ...signedB!.descriptor.annotations, [ReferrerAnnotation.Subject]: f.subject.digest } });
    });
    await assert.rejects(verifyArtifact(site, f.ref, { keys: [f.publicKey] }), refused(new RegExp(`the referrer's subject is ${b.digest}, not ${f.subject.digest}`)));
  });

  it('refuses a truncated bundle, saying it is truncated', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    const att = (await site.list(f.subject))[0]!;
    const m = await readManifest(f.store, att.descriptor, 'referrer');
    const bundle = await (await import('../../../src/sign/attachments.js')).readVerified(f.store, m.layers[0]!, 'bundle');
    // A referrer whose bundle layer is cut short (its descriptor honest about the cut bytes).
    const cut = bundle.subarray(0, Math.floor(bundle.length / 2));
    const layer = { ...m.layers[0]!, digest: sha256(cut), size: cut.length };
    await f.store.push(layer, Readable.from([cut]));
    const cutManifest: ImageManifest = { ...m, layers: [layer], annotations: { ...m.annotations, note: 'cut' } };
    const cutDigest = await attachManifest(site, f.subject, cutManifest, []);
    // ... and the original bundle's blob truncated on disk under its own digest.
    const path = f.store.blobPath(m.layers[0]!.digest);
    await chmod(path, 0o644);
    await writeFile(path, bundle.subarray(0, 100));
    const err = await verifyArtifact(site, f.ref, { keys: [f.publicKey] }).catch((e: unknown) => e);
    assert.ok(err instanceof VerifyError, String(err));
    const reasons = Object.fromEntries(err.report.rejected.map((i) => [i.manifest, i.reason]));
    assert.match(reasons[cutDigest]!, /not valid JSON \(truncated or damaged/);
    assert.match(reasons[att.descriptor.digest]!, /shorter than its declared .* \(truncated or altered\)/);
  });

  it('with --type, requires a valid attestation of that type; a signature alone does not do', async () => {
    const f = await signingFixture();
    const site = attachmentSite(f.store);
    await signArtifact(site, f.ref, NAME, { key: f.privateKey });
    await assert.rejects(verifyArtifact(site, f.ref, { keys: [f.publicKey], require: 'https://slsa.dev/provenance/v1' }), refused(/no valid attestation of type/));
    const dir = await tempDir();
    await writeFile(join(dir, 'p.json'), JSON.stringify({ buildDefinition: { buildType: 'urn:x', externalParameters: {} }, runDetails: { builder: { id: 'urn:y' } } }));
    await attestArtifact(site, f.ref, NAME, { key: f.privateKey, type: 'slsaprovenance1', predicateFile: join(dir, 'p.json') });
    await attestArtifact(site, f.ref, NAME, { key: f.privateKey, type: 'custom', predicateFile: join(dir, 'p.json'), legacy: true });
    const r = await verifyArtifact(site, f.ref, { keys: [f.publicKey], require: 'https://slsa.dev/provenance/v1' });
    assert.ok(r.ok);
    assert.ok(r.verified.some((i) => i.format === 'legacy' && i.kind === 'attestation' && i.predicateType === 'https://cosign.sigstore.dev/attestation/v1'));
  });
});
