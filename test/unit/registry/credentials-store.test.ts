import { before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { findCredential, kitAuthPath, removeCredential, saveCredential } from '../../../src/registry/credentials/index.js';
import { KitError } from '../../../src/errors.js';
import { isolateEnv } from './servers.js';

before(isolateEnv);
beforeEach(() => rm(process.env['KIT_CONFIG_HOME']!, { recursive: true, force: true }));

describe('saveCredential', () => {
  it('writes auth.json in the kit config folder with mode 0600 (folder 0700)', async () => {
    const path = await saveCredential('reg.example.com:5000', { username: 'u', password: 'p@ss:word' });
    assert.equal(path, join(process.env['KIT_CONFIG_HOME']!, 'auth.json'));
    assert.equal(path, kitAuthPath());
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(path))).mode & 0o777, 0o700);
    const file = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(file, { auths: { 'reg.example.com:5000': { auth: Buffer.from('u:p@ss:word').toString('base64') } } });
    assert.deepEqual(await findCredential('reg.example.com:5000'), { username: 'u', password: 'p@ss:word' });
  });

  it('replaces entries under aliases, keeps the others and leaves no temp file', async () => {
    const path = kitAuthPath();
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: 'b2xkOm9sZA==' }, 'other.io': { auth: 'eDp5' } }, extra: { keep: true } }));
    await saveCredential('docker.io', { identityToken: 'id-tok', username: 'hub' });
    const file = JSON.parse(await readFile(path, 'utf8'));
    assert.deepEqual(file, { auths: { 'other.io': { auth: 'eDp5' }, 'docker.io': { username: 'hub', identitytoken: 'id-tok' } }, extra: { keep: true } });
    assert.deepEqual(await readdir(dirname(path)), ['auth.json']);
    assert.deepEqual(await findCredential('registry-1.docker.io'), { username: 'hub', identityToken: 'id-tok' });
    assert.equal((await stat(path)).mode & 0o777, 0o600, 'rewritten files stay private');
  });

  it('refuses a credential without a secret', async () => {
    await assert.rejects(saveCredential('reg.io', { username: 'u' }), (e: unknown) => e instanceof KitError && e.code === 'CREDENTIALS_INVALID');
  });

  it('names the file, not its content, when it is not JSON', async () => {
    const path = kitAuthPath();
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '{"auths": {"r.io": {"auth": "c2VjcmV0LXZhbHVl"}');
    await assert.rejects(findCredential('r.io'), (e: unknown) => e instanceof KitError && e.code === 'CREDENTIALS_INVALID' && e.message.includes(path) && !e.message.includes('c2VjcmV0LXZhbHVl'));
  });
});

describe('removeCredential', () => {
  it('removes every alias of the registry and says whether there was one', async () => {
    await saveCredential('docker.io', { username: 'u', password: 'p' });
    await saveCredential('reg.io', { username: 'u', password: 'p' });
    assert.equal(await removeCredential('index.docker.io'), true);
    assert.equal(await removeCredential('docker.io'), false);
    assert.equal(await findCredential('docker.io'), undefined);
    assert.deepEqual(await findCredential('reg.io'), { username: 'u', password: 'p' });
  });

  it('is false when there is no file', async () => {
    assert.equal(await removeCredential('reg.io'), false);
  });
});
