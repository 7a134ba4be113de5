/**
 * The real CLI against a real registry that wants credentials: TLS with a test CA and
 * htpasswd Basic auth, and distribution's token auth with a token server in the harness.
 * Covers login/logout, Docker's config.json and a credential helper, CI environment
 * variables, anonymous pulls, refusals, a cross-origin blob redirect that must not carry
 * credentials, and that no secret ever appears in output.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXAMPLE, runKit, type RunResult } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { registrySkipReason } from './harness/registry-server.js';
import { startSetup, type Setup } from './harness/setups.js';
import { startBlobMirror, startFaultProxy } from './harness/fault-proxy.js';

const skip = await registrySkipReason();
const PASSWORD = 'wonderland';

interface Env {
  home: string;
  env: Record<string, string>;
}

async function newEnv(extra: Record<string, string> = {}): Promise<Env> {
  const home = await tempDir();
  return { home, env: { KIT_CONFIG_HOME: join(home, 'config'), DOCKER_CONFIG: join(home, 'docker'), ...extra } };
}

const outputs: RunResult[] = [];
async function kit(e: Env, args: string[], input?: string, env: Record<string, string> = {}): Promise<RunResult> {
  const r = await runKit(args, { home: e.home, env: { ...e.env, ...env }, ...(input !== undefined ? { input } : {}) });
  outputs.push(r);
  return r;
}
async function ok(e: Env, args: string[], input?: string, env: Record<string, string> = {}): Promise<string> {
  const r = await kit(e, args, input, env);
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

describe('TLS registry with Basic auth', { skip }, () => {
  let setup: Setup;
  let ca: string[];
  before(async () => {
    setup = await startSetup('tls-basic');
    ca = ['--ca-cert', setup.caCert!];
  });
  after(async () => setup?.stop());

  it('refuses an untrusted certificate with a clear error, and works with --ca-cert or --tls-verify=false', async () => {
    const e = await newEnv();
    const r = await kit(e, ['list', '--remote', `${setup.registry.host}/team/model`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate|TLS/i);
    assert.match(r.stderr, /hint: .*(ca-cert|tls)/i);
    const unauth = await kit(e, ['list', '--remote', `${setup.registry.host}/team/model`, ...ca]);
    assert.match(unauth.stderr, /kit login/);
  });

  it('logs in from stdin, pushes and pulls, logs out and is refused again', async () => {
    const e = await newEnv();
    const ref = `${setup.registry.host}/team/model:1`;
    await ok(e, ['pack', EXAMPLE, '-t', ref]);
    const denied = await kit(e, ['push', ref, ...ca]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /kit login/);

    const bad = await kit(e, ['login', setup.registry.host, '-u', 'alice', '--password-stdin', ...ca], 'not-the-password\n');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^kit: /);

    await ok(e, ['login', setup.registry.host, '-u', 'alice', '--password-stdin', ...ca], `${PASSWORD}\n`);
    const authFile = join(e.home, 'config', 'auth.json');
    assert.equal((await stat(authFile)).mode & 0o777, 0o600);
    await ok(e, ['push', ref, ...ca]);
    const e2 = { home: await tempDir(), env: e.env };
    await ok(e2, ['pull', ref, ...ca]);
    await ok(e, ['logout', setup.registry.host]);
    assert.doesNotMatch(await readFile(authFile, 'utf8'), new RegExp(setup.registry.host.replace(/\./g, '\\.')));
    const after = await kit(e, ['pull', ref, ...ca]);
    assert.notEqual(after.code, 0);
  });

  it("uses Docker's config.json auths and a docker-credential helper", async () => {
    const ref = `${setup.registry.host}/docker/model:1`;
    const e = await newEnv();
    await mkdir(e.env.DOCKER_CONFIG!, { recursive: true });
    await writeFile(join(e.env.DOCKER_CONFIG!, 'config.json'), JSON.stringify({ auths: { [setup.registry.host]: { auth: Buffer.from(`alice:${PASSWORD}`).toString('base64') } } }));
    await ok(e, ['pack', EXAMPLE, '-t', ref]);
    await ok(e, ['push', ref, ...ca]);

    const h = await newEnv();
    const bin = join(h.home, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'docker-credential-kittest'), `#!/bin/sh\nread server\necho '{"ServerURL":"'"$server"'","Username":"alice","Secret":"${PASSWORD}"}'\n`);
    await chmod(join(bin, 'docker-credential-kittest'), 0o755);
    await mkdir(h.env.DOCKER_CONFIG!, { recursive: true });
    await writeFile(join(h.env.DOCKER_CONFIG!, 'config.json'), JSON.stringify({ credHelpers: { [setup.registry.host]: 'kittest' } }));
    await ok(h, ['pull', ref, ...ca], undefined, { PATH: `${bin}:${process.env.PATH}` });
  });

  it('never prints a secret, even with -v and on errors', () => {
    for (const r of outputs) {
      assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD), 'password leaked');
      assert.ok(!r.stderr.includes(Buffer.from(`alice:${PASSWORD}`).toString('base64')), 'Basic credentials leaked');
    }
  });
});

describe('mutual TLS', { skip }, () => {
  let setup: Setup;
  before(async () => {
    setup = await startSetup('tls-basic', { mutualTls: true });
  });
  after(async () => setup?.stop());

  it('presents the client certificate given with --cert/--key, and is refused without it', async () => {
    const e = await newEnv({ KIT_REGISTRY_USERNAME: 'alice', KIT_REGISTRY_PASSWORD: PASSWORD });
    const ref = `${setup.registry.host}/mtls/model:1`;
    await ok(e, ['pack', EXAMPLE, '-t', ref]);
    const refused = await kit(e, ['push', ref, '--ca-cert', setup.caCert!]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /^kit: /);
    await ok(e, ['push', ref, '--ca-cert', setup.caCert!, '--cert', setup.clientCert!, '--key', setup.clientKey!]);
  });
});

describe('token-auth registry', { skip }, () => {
  let setup: Setup;
  before(async () => {
    setup = await startSetup('token');
  });
  after(async () => setup?.stop());

  it('pushes with CI environment credentials, pulls public repositories anonymously, refuses anonymous pushes', async () => {
    const ci = await newEnv({ KIT_REGISTRY_USERNAME: 'alice', KIT_REGISTRY_PASSWORD: PASSWORD, KIT_REGISTRY_HOST: setup.registry.host });
    const pub = `${setup.registry.host}/public/model:1`;
    await ok(ci, ['pack', EXAMPLE, '-t', pub]);
    await ok(ci, ['push', pub, '-v']);
    const anon = await newEnv();
    await ok(anon, ['pull', pub]);
    await ok(anon, ['pack', EXAMPLE, '-t', `${setup.registry.host}/team/model:1`]);
    const denied = await kit(anon, ['push', `${setup.registry.host}/team/model:1`]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /unauthori[sz]ed|denied|kit login/i);
    const privatePull = await kit(anon, ['pull', `${setup.registry.host}/team/other:1`]);
    assert.notEqual(privatePull.code, 0);
    // The token server saw scoped requests with credentials for the push.
    assert.ok(setup.token!.requests.some((q) => q.user === 'alice' && JSON.stringify(q.query).includes('public/model')));
  });

  it('logs in against the token server and tags across repositories with a mount', async () => {
    const e = await newEnv();
    await ok(e, ['login', setup.registry.host, '-u', 'alice', '--password-stdin'], `${PASSWORD}\n`);
    const a = `${setup.registry.host}/team/a:1`;
    await ok(e, ['pack', EXAMPLE, '-t', a]);
    await ok(e, ['push', a]);
    const r = JSON.parse(await ok(e, ['tag', '--remote', a, `${setup.registry.host}/team/b:1`, '--json'])) as { mounted: number };
    assert.ok(r.mounted >= 10);
  });

  it('sends no credentials to another host a blob GET is redirected to', async () => {
    const e = await newEnv({ KIT_REGISTRY_USERNAME: 'alice', KIT_REGISTRY_PASSWORD: PASSWORD });
    const ref = `${setup.registry.host}/team/redirected:1`;
    await ok(e, ['pack', EXAMPLE, '-t', ref]);
    await ok(e, ['push', ref]);
    // A "CDN" on another origin: it fetches from the registry with its own token.
    const mirrorToken = setup.token!.mint('alice', [{ type: 'repository', name: 'team/redirected', actions: ['pull'] }]);
    const mirror = await startBlobMirror({ target: setup.registry.url, upstreamHeaders: { authorization: `Bearer ${mirrorToken}` } });
    const proxy = await startFaultProxy({ target: setup.registry.url, rules: [{ kind: 'redirect-blob-get', to: mirror.url }] });
    try {
      const puller = { home: await tempDir(), env: e.env };
      await ok(puller, ['pull', `${proxy.host}/team/redirected:1`, '--plain-http']);
      assert.ok(mirror.requests.length >= 10, 'blobs came from the mirror');
      for (const req of mirror.requests) {
        assert.equal(req.headers.authorization, undefined, 'no Authorization header crossed origins');
        assert.equal(req.headers.cookie, undefined);
      }
      assert.ok(proxy.log.some((l) => typeof l.headers.authorization === 'string'), 'the registry itself did get credentials');
    } finally {
      await proxy.stop();
      await mirror.stop();
    }
  });

  it('never prints a secret', () => {
    for (const r of outputs) assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD));
  });
});
