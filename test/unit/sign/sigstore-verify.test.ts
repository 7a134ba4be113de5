import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { KeyObject } from 'node:crypto';
import { attachmentSite, readManifest, readVerified } from '../../../src/sign/attachments.js';
import { signArtifact } from '../../../src/sign/sign.js';
import { attestArtifact } from '../../../src/sign/attest.js';
import { keyHint } from '../../../src/sign/keys.js';
import { signingFixture } from './helpers.js';
import { tempDir } from '../../helpers/tmp.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Independent verification: the bundles kit writes, checked by sigstore's own JavaScript
 * verifier (@sigstore/bundle parses and validates the bundle, @sigstore/verify checks the DSSE
 * signature with the public key), offline, with transparency-log and timestamp thresholds 0.
 */
const require = createRequire(import.meta.url);
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify') as typeof import('@sigstore/verify');
const { bundleFromJSON } = require('@sigstore/bundle') as typeof import('@sigstore/bundle');

const EMPTY_ROOT = { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };

function sigstoreVerify(bundleJson: unknown, publicKey: KeyObject): void {
  const bundle = bundleFromJSON(bundleJson);
  const trust = toTrustMaterial(EMPTY_ROOT as never, (hint: string) => {
    assert.equal(hint, keyHint(publicKey), 'the bundle names the key by its hint');
    return { publicKey, validFor: () => true };
  });
  new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundle));
}

async function bundleOf(f: Awaited<ReturnType<typeof signingFixture>>, digest: string): Promise<Record<string, unknown>> {
  const att = (await attachmentSite(f.store).list(f.subject)).find((a) => a.descriptor.digest === digest)!;
  const m = await readManifest(f.store, att.descriptor, 'referrer');
  return JSON.parse((await readVerified(f.store, m.layers[0]!, 'bundle')).toString()) as Record<string, unknown>;
}

describe('bundles made by kit, verified by @sigstore/verify', () => {
  it('verifies a signature bundle, and its statement names the manifest digest', async () => {
    const f = await signingFixture();
    const { signature } = await signArtifact(attachmentSite(f.store), f.ref, 'registry.example.com/team/model', { key: f.privateKey });
    const bundle = await bundleOf(f, signature);
    assert.equal(bundle['mediaType'], 'application/vnd.dev.sigstore.bundle.v0.3+json');
    sigstoreVerify(bundle, f.publicKey);
    const env = bundle['dsseEnvelope'] as { payload: string; payloadType: string };
    assert.equal(env.payloadType, 'application/vnd.in-toto+json');
    const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString()) as { subject: Array<{ digest: { sha256: string } }>; predicateType: string };
    assert.equal(statement.subject[0]!.digest.sha256, f.subject.digest.slice(7));
    assert.equal(statement.predicateType, 'https://sigstore.dev/cosign/sign/v1');
  });

  it('verifies an attestation bundle', async () => {
    const f = await signingFixture();
    const dir = await tempDir();
    await writeFile(join(dir, 'bom.json'), JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.6', version: 1 }));
    const { attestation } = await attestArtifact(attachmentSite(f.store), f.ref, 'registry.example.com/team/model', { key: f.privateKey, type: 'cyclonedx', predicateFile: join(dir, 'bom.json') });
    sigstoreVerify(await bundleOf(f, attestation), f.publicKey);
  });

  it('is refused by @sigstore/verify when the payload is altered or the key is another', async () => {
    const f = await signingFixture();
    const { signature } = await signArtifact(attachmentSite(f.store), f.ref, 'registry.example.com/team/model', { key: f.privateKey });
    const bundle = await bundleOf(f, signature);
    const env = bundle['dsseEnvelope'] as { payload: string };
    const altered = { ...bundle, dsseEnvelope: { ...env, payload: Buffer.from(Buffer.from(env.payload, 'base64').toString().replace(f.subject.digest.slice(7), '0'.repeat(64))).toString('base64') } };
    assert.throws(() => sigstoreVerify(altered, f.publicKey), /signature verification failed/);
    const other = await signingFixture();
    assert.throws(() => new Verifier(toTrustMaterial(EMPTY_ROOT as never, () => ({ publicKey: other.publicKey, validFor: () => true })), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundleFromJSON(bundle))), /signature verification failed/);
  });
});
