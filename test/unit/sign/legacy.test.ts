import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { legacyManifest, mergeLayers, parseSimpleSigning, simpleSigningPayload } from '../../../src/sign/legacy.js';
import { legacyTag, predicateTypeOf } from '../../../src/sign/media.js';
import { sha256 } from '../../../src/oci/digest.js';

const DIGEST = `sha256:${'9f'.repeat(32)}` as const;

describe("cosign's legacy (tag-based) formats", () => {
  it('writes the Simple Signing payload byte for byte as cosign does (SIGNATURE_SPEC.md)', () => {
    assert.equal(
      simpleSigningPayload('registry.example.com/team/model', DIGEST).toString(),
      `{"critical":{"identity":{"docker-reference":"registry.example.com/team/model"},"image":{"docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"},"optional":null}`,
    );
  });

  it('reads payloads with cosign\'s case-insensitive keys, and refuses other types', () => {
    const legacyCase = Buffer.from(`{"Critical":{},"critical":{"Identity":{},"image":{"Docker-manifest-digest":"${DIGEST}"},"type":"cosign container image signature"}}`);
    assert.equal(parseSimpleSigning(legacyCase, 't').digest, DIGEST);
    assert.throws(() => parseSimpleSigning(Buffer.from(`{"critical":{"image":{"docker-manifest-digest":"${DIGEST}"},"type":"other"}}`), 't'), /not "cosign container image signature"/);
  });

  it('names the tags sha256-<hex>.sig and .att', () => {
    assert.equal(legacyTag(DIGEST, 'sig'), `sha256-${'9f'.repeat(32)}.sig`);
    assert.equal(legacyTag(DIGEST, 'att'), `sha256-${'9f'.repeat(32)}.att`);
  });

  it('lays the signature out as an OCI image manifest with one simplesigning layer per signature, the signature in its annotation', () => {
    const payload = simpleSigningPayload('r/x', DIGEST);
    const layer = { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', size: payload.length, digest: sha256(payload), annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ==' } };
    const built = legacyManifest([layer]);
    const m = JSON.parse(built.bytes.toString()) as { schemaVersion: number; mediaType: string; config: { mediaType: string; digest: string }; layers: unknown[] };
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(m.config.digest, sha256(built.config.bytes));
    assert.deepEqual(m.layers, [layer]);
    assert.deepEqual((JSON.parse(built.config.bytes.toString()) as { rootfs: unknown }).rootfs, { type: 'layers', diff_ids: [layer.digest] });
    assert.equal(built.descriptor.digest, sha256(built.bytes));
  });

  it('merges signatures: a second signature adds a layer, the same one twice does not', () => {
    const a = { mediaType: 'm', size: 1, digest: sha256('a'), annotations: { s: '1' } };
    const b = { mediaType: 'm', size: 1, digest: sha256('a'), annotations: { s: '2' } };
    assert.equal(mergeLayers([a], [a]).length, 1);
    assert.deepEqual(mergeLayers([a], [b]), [a, b]);
  });

  it('maps --type names to predicate types as cosign does, and takes URIs as they are', () => {
    assert.equal(predicateTypeOf('slsaprovenance1'), 'https://slsa.dev/provenance/v1');
    assert.equal(predicateTypeOf('spdxjson'), 'https://spdx.dev/Document');
    assert.equal(predicateTypeOf('cyclonedx'), 'https://cyclonedx.org/bom');
    assert.equal(predicateTypeOf('custom'), 'https://cosign.sigstore.dev/attestation/v1');
    assert.equal(predicateTypeOf('https://example.com/p/v1'), 'https://example.com/p/v1');
    assert.throws(() => predicateTypeOf('nonsense'), /unknown predicate type/);
  });
});
