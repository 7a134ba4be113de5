/**
 * Supply chain through the real CLI, local store only: keys, sign, verify (both formats, --json,
 * refusals with their reasons and exit codes), attest with the documents generated at pack
 * time, referrers, unpack --verify-key refusing before it writes, and remove taking referrers along.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXAMPLE, runKit, type RunResult } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const REF = 'registry.example.com/team/sentiment:1.0';
const PASSWORD = 'pack-and-sign';

describe('kit key / sign / verify / attest / referrers (local store)', () => {
  let home: string;
  let keys: string;
  const kit = (args: string[], env: Record<string, string> = {}, input?: string): Promise<RunResult> =>
    runKit(args, { home, cwd: keys, env: { KIT_PASSWORD: PASSWORD, ...env }, ...(input !== undefined ? { input } : {}) });
  const ok = async (args: string[], env: Record<string, string> = {}): Promise<string> => {
    const r = await kit(args, env);
    assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    home = await tempDir();
    keys = await tempDir();
    await ok(['key', 'generate']);
    await ok(['key', 'generate', '--output-key-prefix', 'other']);
    await ok(['pack', EXAMPLE, '-t', REF, '--provenance']);
  });

  it('refuses an unsigned artifact with a clear reason and exit code 1', async () => {
    const r = await kit(['verify', REF, '--key', 'cosign.pub']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /kit: no signature found for registry\.example\.com\/team\/sentiment:1\.0 \(sha256:/);
  });

  it('key generate writes cosign.key (0600, encrypted) and cosign.pub, and will not overwrite them', async () => {
    const st = await stat(join(keys, 'cosign.key'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.match(await readFile(join(keys, 'cosign.key'), 'utf8'), /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
    assert.match(await readFile(join(keys, 'cosign.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
    const again = await kit(['key', 'generate']);
    assert.equal(again.code, 4);
    assert.match(again.stderr, /already exists/);
    // An empty password is allowed, as with cosign.
    await ok(['key', 'generate', '--output-key-prefix', 'nopass'], { KIT_PASSWORD: '' });
    await ok(['sign', REF, '--key', 'nopass.key', '--json'], { KIT_PASSWORD: '' });
  });

  it('signs (bundle and legacy) and verifies both; --json lists them', async () => {
    await ok(['sign', REF, '--key', 'cosign.key']);
    await ok(['sign', REF, '--key', 'cosign.key', '--legacy']);
    const r = JSON.parse(await ok(['verify', REF, '--key', 'cosign.pub', '--json'])) as { ok: boolean; verified: Array<{ format: string; kind: string }> };
    assert.equal(r.ok, true);
    assert.deepEqual(r.verified.map((i) => `${i.format} ${i.kind}`).sort(), ['bundle signature', 'legacy signature']);
    // The signature by the password-less key is there too, refused for this key with its reason.
    assert.ok((r as unknown as { rejected: Array<{ reason: string }> }).rejected.every((i) => /does not verify with the given key/.test(i.reason)));
  });

  it('refuses a wrong password and a wrong key, saying why', async () => {
    const bad = await kit(['sign', REF, '--key', 'cosign.key'], { KIT_PASSWORD: 'nope' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /wrong password/);
    const wrong = await kit(['verify', REF, '--key', 'other.pub', '--json']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /no valid signature for .*\n.*does not verify with the given key/);
    const report = JSON.parse(wrong.stdout) as { ok: boolean; rejected: Array<{ reason: string }> };
    assert.equal(report.ok, false);
    assert.equal(report.rejected.length, 3);
  });

  it('attests with the provenance and ML-BOM generated at pack time, and verifies the attestation by type', async () => {
    await ok(['attest', REF, '--key', 'cosign.key', '--type', 'slsaprovenance1']);
    await ok(['attest', REF, '--key', 'cosign.key', '--type', 'cyclonedx', '--legacy']);
    const predicate = join(keys, 'note.txt');
    await writeFile(predicate, 'reviewed by the ML team\n');
    await ok(['attest', REF, '--key', 'cosign.key', '--type', 'custom', '--predicate', predicate]);
    const r = JSON.parse(await ok(['verify', REF, '--key', 'cosign.pub', '--type', 'cyclonedx', '--json'])) as { verified: Array<{ predicateType?: string; format: string }> };
    assert.ok(r.verified.some((i) => i.predicateType === 'https://cyclonedx.org/bom' && i.format === 'legacy'));
    assert.ok(r.verified.some((i) => i.predicateType === 'https://slsa.dev/provenance/v1'));
    const missing = await kit(['attest', REF, '--key', 'cosign.key', '--type', 'spdxjson']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no --predicate given/);
  });

  it('lists what is attached: provenance, SBOM, signatures, attestations', async () => {
    const r = JSON.parse(await ok(['referrers', REF, '--json'])) as { referrers: Array<{ kind: string; tag?: string }> };
    const kinds = r.referrers.map((x) => x.kind).sort();
    assert.deepEqual(kinds, ['attestation', 'attestation', 'attestation', 'provenance', 'sbom', 'signature', 'signature', 'signature']);
    const bundles = JSON.parse(await ok(['referrers', REF, '--json', '--artifact-type', 'application/vnd.dev.sigstore.bundle.v0.3+json'])) as { referrers: unknown[] };
    assert.equal(bundles.referrers.length, 4);
    assert.match(await ok(['referrers', REF]), /^DIGEST\s+KIND\s+TYPE\s+CREATED\n/);
  });

  it('unpack --verify-key refuses before writing anything, and unpacks with the right key', async () => {
    const refusedDir = join(await tempDir(), 'out');
    const r = await kit(['unpack', REF, '-d', refusedDir, '--verify-key', 'other.pub']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no valid signature/);
    await assert.rejects(stat(refusedDir), 'nothing was written');
    const dir = join(await tempDir(), 'out');
    await ok(['unpack', REF, '-d', dir, '--verify-key', 'cosign.pub']);
    assert.equal(await readFile(join(dir, 'README.md'), 'utf8'), await readFile(join(EXAMPLE, 'README.md'), 'utf8'));
  });

  it('kit remove takes the referrers along', async () => {
    await ok(['remove', REF]);
    const index = JSON.parse(await readFile(join(home, 'store', 'index.json'), 'utf8')) as { manifests: unknown[] };
    assert.deepEqual(index.manifests, []);
  });
});
