import { before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { findCredential, saveCredential } from '../../../src/registry/credentials/index.js';
import { KitError } from '../../../src/errors.js';
import { isolateEnv } from './servers.js';

let root: string;
let helperLog: string;

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/**
 * A fake `docker-credential-test` on PATH speaking the helper protocol: server URL on stdin,
 * JSON on stdout; "credentials not found" with exit 1 for unknown servers.
 */
const HELPER = `#!/bin/sh
read -r url || true
echo "$1 $url" >> "$KIT_TEST_HELPER_LOG"
case "$url" in
  helper.example.com) echo '{"ServerURL":"helper.example.com","Username":"helper-user","Secret":"helper-pw"}' ;;
  token.example.com) echo '{"ServerURL":"token.example.com","Username":"<token>","Secret":"helper-identity-token"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub-user","Secret":"hub-pw"}' ;;
  broken.example.com) echo 'the keychain is locked' >&2; exit 3 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
`;

async function dockerConfig(config: unknown): Promise<void> {
  const dir = process.env['DOCKER_CONFIG']!;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
}

async function helperCalls(): Promise<string[]> {
  try {
    return (await readFile(helperLog, 'utf8')).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

before(async () => {
  root = await isolateEnv();
  const bin = join(root, 'bin');
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, 'docker-credential-test'), HELPER);
  await chmod(join(bin, 'docker-credential-test'), 0o755);
  process.env['PATH'] = `${bin}${delimiter}${process.env['PATH'] ?? ''}`;
  helperLog = join(root, 'helper.log');
  process.env['KIT_TEST_HELPER_LOG'] = helperLog;
});

beforeEach(async () => {
  await rm(process.env['KIT_CONFIG_HOME']!, { recursive: true, force: true });
  await rm(process.env['DOCKER_CONFIG']!, { recursive: true, force: true });
  await rm(helperLog, { force: true });
  for (const k of ['KIT_REGISTRY_HOST', 'KIT_REGISTRY_USERNAME', 'KIT_REGISTRY_PASSWORD', 'KIT_REGISTRY_TOKEN']) delete process.env[k];
});

describe('findCredential', () => {
  it('finds nothing when nothing is configured', async () => {
    assert.equal(await findCredential('reg.example.com'), undefined);
  });

  it('prefers kit\'s own file over Docker\'s config and the environment', async () => {
    await saveCredential('reg.example.com', { username: 'kit-user', password: 'kit-pw' });
    await dockerConfig({ auths: { 'reg.example.com': { auth: b64('docker-user:docker-pw') } } });
    process.env['KIT_REGISTRY_USERNAME'] = 'env-user';
    process.env['KIT_REGISTRY_PASSWORD'] = 'env-pw';
    assert.deepEqual(await findCredential('reg.example.com'), { username: 'kit-user', password: 'kit-pw' });
  });

  it('reads Docker auths, with a scheme or path in the key', async () => {
    await dockerConfig({ auths: { 'https://reg.example.com/v1/': { auth: b64('docker-user:pw:with:colons') } } });
    assert.deepEqual(await findCredential('reg.example.com'), { username: 'docker-user', password: 'pw:with:colons' });
  });

  it('reads an identity token from Docker auths', async () => {
    await dockerConfig({ auths: { 'reg.example.com': { auth: b64('00000000-0000-0000-0000-000000000000:'), identitytoken: 'refresh-me' } } });
    assert.deepEqual(await findCredential('reg.example.com'), { username: '00000000-0000-0000-0000-000000000000', identityToken: 'refresh-me' });
  });

  it('asks credHelpers[host] before credsStore before auths', async () => {
    await dockerConfig({
      credHelpers: { 'helper.example.com': 'test' },
      credsStore: 'absent-helper',
      auths: { 'helper.example.com': { auth: b64('auths-user:auths-pw') } },
    });
    assert.deepEqual(await findCredential('helper.example.com'), { username: 'helper-user', password: 'helper-pw' });
    assert.deepEqual(await helperCalls(), ['get helper.example.com']);
  });

  it('uses credsStore, and falls back to auths when the helper has nothing', async () => {
    await dockerConfig({ credsStore: 'test', auths: { 'other.example.com': { auth: b64('auths-user:auths-pw') } } });
    assert.deepEqual(await findCredential('helper.example.com'), { username: 'helper-user', password: 'helper-pw' });
    assert.deepEqual(await findCredential('other.example.com'), { username: 'auths-user', password: 'auths-pw' });
    assert.deepEqual(await helperCalls(), ['get helper.example.com', 'get other.example.com']);
  });

  it('reads "<token>" from a helper as an identity token', async () => {
    await dockerConfig({ credsStore: 'test' });
    assert.deepEqual(await findCredential('token.example.com'), { identityToken: 'helper-identity-token' });
  });

  it('asks a helper for Docker Hub by its legacy server URL, for every alias', async () => {
    await dockerConfig({ credsStore: 'test' });
    for (const name of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      assert.deepEqual(await findCredential(name), { username: 'hub-user', password: 'hub-pw' });
    }
    assert.deepEqual(await helperCalls(), Array(3).fill('get https://index.docker.io/v1/'));
  });

  it('finds Docker Hub auths under any alias', async () => {
    for (const [i, key] of ['https://index.docker.io/v1/', 'docker.io', 'index.docker.io', 'registry-1.docker.io'].entries()) {
      await dockerConfig({ auths: { [key]: { auth: b64(`user${i}:p`) } } });
      assert.deepEqual(await findCredential('docker.io'), { username: `user${i}`, password: 'p' }, key);
    }
  });

  it('ignores a helper that is not installed', async () => {
    await dockerConfig({ credsStore: 'not-installed-anywhere', auths: { 'reg.example.com': { auth: b64('a:b') } } });
    assert.deepEqual(await findCredential('reg.example.com'), { username: 'a', password: 'b' });
  });

  it('reports a failing helper', async () => {
    await dockerConfig({ credsStore: 'test' });
    await assert.rejects(findCredential('broken.example.com'), (e: unknown) => e instanceof KitError && e.code === 'CREDENTIAL_HELPER_FAILED' && /locked/.test(e.message));
  });

  it('refuses a helper name that is a path', async () => {
    await dockerConfig({ credsStore: '../../bin/sh' });
    await assert.rejects(findCredential('reg.example.com'), (e: unknown) => e instanceof KitError && e.code === 'CREDENTIAL_HELPER_FAILED');
  });

  it('names the file, not the secret, when an entry is broken', async () => {
    await dockerConfig({ auths: { 'reg.example.com': { auth: b64('no-colon-super-secret') } } });
    await assert.rejects(findCredential('reg.example.com'), (e: unknown) => {
      assert.ok(e instanceof KitError && e.code === 'CREDENTIALS_INVALID');
      assert.ok(e.message.includes('config.json'));
      assert.ok(!e.message.includes('super-secret') && !e.message.includes(b64('no-colon-super-secret')));
      return true;
    });
  });

  it('falls back to the environment for any registry, or for KIT_REGISTRY_HOST only', async () => {
    process.env['KIT_REGISTRY_USERNAME'] = 'ci';
    process.env['KIT_REGISTRY_PASSWORD'] = 'ci-pw';
    assert.deepEqual(await findCredential('anything.example.com'), { username: 'ci', password: 'ci-pw' });
    process.env['KIT_REGISTRY_HOST'] = 'ci.example.com:5000';
    assert.equal(await findCredential('anything.example.com'), undefined);
    assert.deepEqual(await findCredential('ci.example.com:5000'), { username: 'ci', password: 'ci-pw' });
    process.env['KIT_REGISTRY_HOST'] = 'docker.io';
    assert.deepEqual(await findCredential('index.docker.io'), { username: 'ci', password: 'ci-pw' });
  });

  it('takes KIT_REGISTRY_TOKEN as an identity token', async () => {
    process.env['KIT_REGISTRY_TOKEN'] = 'ci-token';
    assert.deepEqual(await findCredential('reg.example.com'), { identityToken: 'ci-token' });
  });
});
