/**
 * Supply chain against a real registry (CNCF distribution 2.8: no referrers API, so the
 * `sha256-<hex>` fallback index tag is what carries bundle referrers): sign and attest locally
 * and push them along, sign in the registry, verify there, the cosign byte layouts as stored,
 * pull into a fresh store and verify with no registry reachable, and the refusals.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { request } from 'undici';
import { EXAMPLE, runKit, type RunResult } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from './harness/registry-server.js';

const skip = await registrySkipReason();
const PASSWORD = 'registry-signing';

async function getJson(url: string, accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'): Promise<{ status: number; body: unknown; text: string }> {
  const res = await request(url, { headers: { accept } });
  const text = await res.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, body, text };
}

describe('supply chain against a plain-HTTP registry', { skip }, () => {
  let reg: RunningRegistry;
  let keys: string;
  const kit = (home: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> =>
    runKit(args, { home, cwd: keys, env: { KIT_PASSWORD: PASSWORD, KIT_CONFIG_HOME: join(home, 'config'), DOCKER_CONFIG: join(home, 'docker'), ...env } });
  const ok = async (home: string, args: string[]): Promise<string> => {
    const r = await kit(home, args);
    assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    reg = await startRegistry();
    keys = await tempDir();
    const h = await tempDir();
    await ok(h, ['key', 'generate']);
    await ok(h, ['key', 'generate', '--output-key-prefix', 'other']);
  });
  after(async () => reg?.stop());

  it('pushes an artifact with its provenance, ML-BOM, signatures and attestations; they are found through the fallback tag', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/team/signed:1.0`;
    await ok(home, ['pack', EXAMPLE, '-t', ref, '--provenance']);
    await ok(home, ['sign', ref, '--key', 'cosign.key']);
    await ok(home, ['sign', ref, '--key', 'cosign.key', '--legacy']);
    await ok(home, ['attest', ref, '--key', 'cosign.key', '--type', 'slsaprovenance1']);
    const pushed = JSON.parse(await ok(home, ['push', ref, '--plain-http', '--json', '--progress', 'none'])) as { digest: string; referrers: number };
    assert.equal(pushed.referrers, 5);
    const hex = pushed.digest.slice('sha256:'.length);

    // distribution 2.8 has no referrers API: the index lives under the fallback tag.
    assert.equal((await getJson(`${reg.url}/v2/team/signed/referrers/${pushed.digest}`)).status, 404);
    const fallback = await getJson(`${reg.url}/v2/team/signed/manifests/sha256-${hex}`);
    assert.equal(fallback.status, 200);
    const listed = (fallback.body as { manifests: Array<{ artifactType?: string; annotations?: Record<string, string> }> }).manifests;
    assert.deepEqual(listed.map((m) => m.artifactType).sort(), [
      'application/vnd.cyclonedx+json',
      'application/vnd.dev.sigstore.bundle.v0.3+json',
      'application/vnd.dev.sigstore.bundle.v0.3+json',
      'application/vnd.in-toto+json',
    ]);
    assert.ok(listed.some((m) => m.annotations?.['dev.sigstore.bundle.predicateType'] === 'https://sigstore.dev/cosign/sign/v1'), 'annotations copied into the fallback index');

    // The legacy signature, byte for byte as cosign's SIGNATURE_SPEC.md lays it out.
    const sig = await getJson(`${reg.url}/v2/team/signed/manifests/sha256-${hex}.sig`);
    assert.equal(sig.status, 200);
    const layer = (sig.body as { layers: Array<{ mediaType: string; digest: string; annotations: Record<string, string> }> }).layers[0]!;
    assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    assert.match(layer.annotations['dev.cosignproject.cosign/signature']!, /^[A-Za-z0-9+/]+=*$/);
    const payload = await (await request(`${reg.url}/v2/team/signed/blobs/${layer.digest}`)).body.text();
    assert.equal(payload, `{"critical":{"identity":{"docker-reference":"${reg.host}/team/signed"},"image":{"docker-manifest-digest":"${pushed.digest}"},"type":"cosign container image signature"},"optional":null}`);
    assert.equal(`sha256:${createHash('sha256').update(payload).digest('hex')}`, layer.digest);

    const r = JSON.parse(await ok(home, ['verify', ref, '--remote', '--plain-http', '--key', 'cosign.pub', '--json'])) as { ok: boolean; where: string; verified: Array<{ format: string; kind: string }> };
    assert.equal(r.ok, true);
    assert.equal(r.where, 'remote');
    assert.deepEqual(r.verified.map((i) => `${i.format} ${i.kind}`).sort(), ['bundle attestation', 'bundle signature', 'legacy signature']);
    const remoteList = JSON.parse(await ok(home, ['referrers', ref, '--remote', '--plain-http', '--json'])) as { referrers: unknown[] };
    assert.equal(remoteList.referrers.length, 5);

    // Pushing again copies nothing new.
    const again = JSON.parse(await ok(home, ['push', ref, '--plain-http', '--json', '--progress', 'none'])) as { referrers: number; copied: number };
    assert.equal(again.referrers, 0);
    assert.equal(again.copied, 0);
  });

  it('signs an artifact in the registry and verifies it there; another manifest under the tag is refused', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/team/remote-signed:1`;
    await ok(home, ['pack', EXAMPLE, '-t', ref]);
    await ok(home, ['push', ref, '--plain-http', '--progress', 'none']);
    await ok(home, ['remove', ref]);
    const signed = JSON.parse(await ok(home, ['sign', ref, '--key', 'cosign.key', '--plain-http', '--json'])) as { where: string; subject: string };
    assert.equal(signed.where, 'remote', 'not in the store: signed in the registry');
    await ok(home, ['sign', ref, '--key', 'cosign.key', '--plain-http', '--legacy']);
    await ok(home, ['verify', ref, '--key', 'cosign.pub', '--plain-http']);

    const wrong = await kit(home, ['verify', ref, '--key', 'other.pub', '--plain-http']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /does not verify with the given key/);

    // Tampering: the tag now names other content (a changed manifest has another digest).
    await ok(home, ['pack', EXAMPLE, '-t', `${reg.host}/team/remote-signed:evil`, '--format', 'kitops']);
    await ok(home, ['push', `${reg.host}/team/remote-signed:evil`, ref, '--plain-http', '--progress', 'none']);
    const r = await kit(home, ['verify', ref, '--key', 'cosign.pub', '--remote', '--plain-http']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no signature found for 127\.0\.0\.1:\d+\/team\/remote-signed:1 \(sha256:/);
    assert.ok(!r.stderr.includes(signed.subject), 'the digest the tag names now is not the signed one');
  });

  it('carries referrers through push -> pull into a fresh store, where they verify with no registry reachable', async () => {
    const own = await startRegistry();
    const homeA = await tempDir();
    const homeB = await tempDir();
    const ref = `${own.host}/team/offline:1`;
    try {
      await ok(homeA, ['pack', EXAMPLE, '-t', ref, '--provenance']);
      await ok(homeA, ['sign', ref, '--key', 'cosign.key']);
      await ok(homeA, ['sign', ref, '--key', 'cosign.key', '--legacy']);
      await ok(homeA, ['attest', ref, '--key', 'cosign.key', '--type', 'cyclonedx', '--legacy']);
      await ok(homeA, ['push', ref, '--plain-http', '--progress', 'none']);

      // A wrong key refuses the pull before anything is written.
      const refusedHome = await tempDir();
      const refused = await kit(refusedHome, ['pull', ref, '--plain-http', '--verify-key', 'other.pub']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /no valid signature/);
      assert.deepEqual(await readdir(join(refusedHome, 'store', 'blobs', 'sha256')).catch(() => []), []);

      const pulled = JSON.parse(await ok(homeB, ['pull', ref, '--plain-http', '--json', '--progress', 'none', '--verify-key', 'cosign.pub'])) as { referrers: number };
      assert.equal(pulled.referrers, 5);

      // --no-referrers leaves them behind.
      const homeC = await tempDir();
      const bare = JSON.parse(await ok(homeC, ['pull', ref, '--plain-http', '--json', '--progress', 'none', '--no-referrers'])) as { referrers?: number };
      assert.equal(bare.referrers, undefined);
      assert.equal((await kit(homeC, ['verify', ref, '--local', '--key', 'cosign.pub'])).code, 1);
    } finally {
      await own.stop();
    }
    // The registry is gone: everything below reads the fresh store only.
    const r = JSON.parse(await ok(homeB, ['verify', ref, '--key', 'cosign.pub', '--json'])) as { ok: boolean; where: string; verified: Array<{ format: string; kind: string }> };
    assert.equal(r.where, 'local');
    assert.deepEqual(r.verified.map((i) => `${i.format} ${i.kind}`).sort(), ['legacy attestation', 'legacy signature', 'bundle signature'].sort());
    await ok(homeB, ['verify', ref, '--key', 'cosign.pub', '--type', 'cyclonedx']);
    const listed = JSON.parse(await ok(homeB, ['referrers', ref, '--json'])) as { referrers: Array<{ kind: string }> };
    assert.deepEqual(listed.referrers.map((x) => x.kind).sort(), ['attestation', 'provenance', 'sbom', 'signature', 'signature']);
    const out = join(await tempDir(), 'model');
    await ok(homeB, ['unpack', ref, '-d', out, '--verify-key', 'cosign.pub']);
    assert.ok((await stat(join(out, 'models', 'sentiment.safetensors'))).isFile());
    // The provenance pulled along can be signed later, offline.
    await ok(homeB, ['attest', ref, '--key', 'cosign.key', '--type', 'slsaprovenance1']);
    await ok(homeB, ['verify', ref, '--key', 'cosign.pub', '--type', 'slsaprovenance1']);
  });

  it('push --no-referrers leaves signatures behind', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/team/bare:1`;
    await ok(home, ['pack', EXAMPLE, '-t', ref]);
    await ok(home, ['sign', ref, '--key', 'cosign.key']);
    const pushed = JSON.parse(await ok(home, ['push', ref, '--plain-http', '--json', '--progress', 'none', '--no-referrers'])) as { digest: string };
    assert.equal((await getJson(`${reg.url}/v2/team/bare/manifests/sha256-${pushed.digest.slice(7)}`)).status, 404);
    const r = await kit(home, ['verify', ref, '--remote', '--plain-http', '--key', 'cosign.pub']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no signature found/);
  });
});
