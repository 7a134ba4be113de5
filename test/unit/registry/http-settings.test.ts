import { before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kitConfigDir, loadRegistrySettings, registrySettingsPath, saveRegistrySettings } from '../../../src/registry/settings.js';
import { createRegistryClient } from '../../../src/registry/client.js';
import { KitError } from '../../../src/errors.js';
import { isolateEnv } from './servers.js';

before(isolateEnv);
beforeEach(() => rm(process.env['KIT_CONFIG_HOME']!, { recursive: true, force: true }));

async function writeSettings(text: string): Promise<string> {
  const path = registrySettingsPath();
  await mkdir(kitConfigDir(), { recursive: true });
  await writeFile(path, text);
  return path;
}

describe('registry settings file', () => {
  it('is empty when there is no file', async () => {
    assert.deepEqual(await loadRegistrySettings('reg.io'), {});
  });

  it('round-trips settings, atomically and privately', async () => {
    const path = await saveRegistrySettings('reg.io:5000', { plainHttp: true, proxy: 'http://proxy:3128' });
    assert.equal(path, join(process.env['KIT_CONFIG_HOME']!, 'registries.json'));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await saveRegistrySettings('other.io', { tlsVerify: false });
    assert.deepEqual(await loadRegistrySettings('reg.io:5000'), { plainHttp: true, proxy: 'http://proxy:3128' });
    assert.deepEqual(await loadRegistrySettings('other.io'), { tlsVerify: false });
    await saveRegistrySettings('reg.io:5000', {});
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { registries: { 'other.io': { tlsVerify: false } } });
  });

  it('resolves relative certificate paths against the file\'s folder', async () => {
    await writeSettings(JSON.stringify({ registries: { 'reg.io': { caCert: 'certs/ca.pem', cert: '/abs/c.pem', key: 'k.pem' } } }));
    assert.deepEqual(await loadRegistrySettings('reg.io'), {
      caCert: join(kitConfigDir(), 'certs/ca.pem'),
      cert: '/abs/c.pem',
      key: join(kitConfigDir(), 'k.pem'),
    });
  });

  it('treats Docker Hub aliases as one registry', async () => {
    await saveRegistrySettings('index.docker.io', { proxy: 'http://p:1' });
    assert.deepEqual(await loadRegistrySettings('docker.io'), { proxy: 'http://p:1' });
  });

  for (const [name, text] of [
    ['invalid JSON', '{"registries": '],
    ['an unknown key', '{"registries": {"reg.io": {"plainHTTP": true}}}'],
    ['a wrong type', '{"registries": {"reg.io": {"tlsVerify": "no"}}}'],
  ] as const) {
    it(`refuses ${name}, naming the file`, async () => {
      const path = await writeSettings(text);
      await assert.rejects(loadRegistrySettings('reg.io'), (e: unknown) => e instanceof KitError && e.code === 'SETTINGS_INVALID' && e.message.includes(path));
    });
  }

  it('is overridden field by field by explicit settings', async () => {
    await saveRegistrySettings('reg.example.com', { plainHttp: true });
    const fromFile = await createRegistryClient('reg.example.com', { credentials: async () => undefined });
    assert.equal(fromFile.baseUrl, 'http://reg.example.com');
    const explicit = await createRegistryClient('reg.example.com', { settings: { plainHttp: false }, credentials: async () => undefined });
    assert.equal(explicit.baseUrl, 'https://reg.example.com');
  });

  it('refuses a registry name that is not host[:port]', async () => {
    for (const bad of ['https://reg.io', 'reg.io/path', 'user@reg.io', '']) {
      await assert.rejects(createRegistryClient(bad, { credentials: async () => undefined }), (e: unknown) => e instanceof KitError && e.code === 'REGISTRY_INVALID', bad);
    }
  });
});
