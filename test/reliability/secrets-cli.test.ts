/**
 * Credentials are never printed: login, push, pull, remote commands and a series of failures
 * (wrong password, refused push, registry down, 5xx bursts, a broken credentials file, a broken
 * credential helper), every one run with -v against the real registry harness (TLS + Basic, and
 * token auth), and every byte of stdout and stderr searched for the password, its Basic
 * encoding and any bearer token. The store and config folders are searched too. And kit's
 * credential file is private (0600 in a 0700 folder, whatever the umask) and replaced
 * atomically (a new file renamed into place, no temp file left).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { freePort, registrySkipReason } from '../integration/harness/registry-server.js';
import { startSetup, defaultTokenAcl, type Setup } from '../integration/harness/setups.js';
import { startFaultProxy } from '../integration/harness/fault-proxy.js';
import { kit, type KitRun, type KitSpawnOptions } from './helpers/kit.js';
import { makeProject } from './helpers/project.js';

const skip = await registrySkipReason();

const USER = 'alice';
// Distinctive, and with characters that get escaped or encoded on the way (URL, JSON, shell).
const SECRET = `pw-${randomBytes(9).toString('hex')}+/=:@%"x`;
const FORMS = [
  SECRET,
  Buffer.from(`${USER}:${SECRET}`).toString('base64'),
  Buffer.from(SECRET).toString('base64'),
  encodeURIComponent(SECRET),
  JSON.stringify(SECRET).slice(1, -1),
];
/** A JWT (what the token server issues as bearer and refresh tokens): header.payload.signature. */
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;

interface Captured extends KitRun {
  args: string[];
}
const outputs: Captured[] = [];

async function run(args: string[], opts: KitSpawnOptions): Promise<Captured> {
  const r = { ...(await kit([...args, '-v'], opts)), args };
  outputs.push(r);
  return r;
}

async function ok(args: string[], opts: KitSpawnOptions): Promise<Captured> {
  const r = await run(args, opts);
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
}

async function fails(args: string[], opts: KitSpawnOptions, pattern?: RegExp): Promise<Captured> {
  const r = await run(args, opts);
  assert.notEqual(r.code, 0, `kit ${args.join(' ')} should have failed`);
  assert.match(r.stderr, /^kit: /m, `kit ${args.join(' ')}: no "kit: " line:\n${r.stderr}`);
  if (pattern) assert.match(r.stderr, pattern);
  return r;
}

function leaks(text: string): string[] {
  const found = FORMS.filter((f) => text.includes(f)).map((f) => `secret form ${JSON.stringify(f.slice(0, 6))}...`);
  const jwt = JWT.exec(text);
  if (jwt) found.push(`a bearer token (${jwt[0].slice(0, 12)}...)`);
  return found;
}

/** Every file below `dir` except `skip` (the credentials file itself), searched for the secret. */
async function filesLeaking(dir: string, skipPaths: Set<string>): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && !skipPaths.has(p)) {
        const text = await readFile(p, 'latin1').catch(() => '');
        if (FORMS.some((f) => text.includes(f))) out.push(p);
      }
    }
  };
  await walk(dir);
  return out;
}

describe('credentials never printed (-v, real registries)', { skip }, () => {
  let basic: Setup;
  let token: Setup;
  let project: string;
  before(async () => {
    const users = { [USER]: SECRET };
    basic = await startSetup('tls-basic', { users });
    token = await startSetup('token', {
      users,
      // `locked/*`: alice may pull but not push, to get a refusal with valid credentials.
      acl: (user, name, actions, type) => (name.startsWith('locked/') ? actions.filter((a) => a === 'pull') : defaultTokenAcl(users)(user, name, actions, type)),
    });
    project = (await makeProject(join(await tempDir('kit-secrets-'), 'p'), { shards: 1, shardMiB: 0.25, seed: 51 })).dir;
  });
  after(async () => {
    await token?.stop();
    await basic?.stop();
  });

  async function home(env: Record<string, string> = {}): Promise<{ home: string; env: Record<string, string> }> {
    return { home: await tempDir('kit-secrets-home-'), env };
  }

  it('TLS + Basic: login, push, pull, remote commands and failures', async () => {
    const ca = ['--ca-cert', basic.caCert!];
    const host = basic.registry.host;
    const a = await home();
    await fails(['login', host, '-u', USER, '--password-stdin', ...ca], { ...a, input: 'wrong-password\n' });
    await fails(['login', host, '-u', 'mallory', '--password-stdin', ...ca], { ...a, input: `${SECRET}\n` });
    await ok(['login', host, '-u', USER, '--password-stdin', ...ca], { ...a, input: `${SECRET}\n`, umask: '000' });

    const ref = `${host}/team/model:1`;
    await ok(['pack', project, '-t', ref], a);
    await ok(['push', ref, ...ca], a);
    await ok(['list', '--remote', `${host}/team/model`, ...ca], a);
    await ok(['inspect', '--remote', ref, ...ca], a);
    const b = { home: await tempDir('kit-secrets-home-'), env: { KIT_CONFIG_HOME: join(a.home, 'config') } };
    await ok(['pull', ref, ...ca], b);
    await ok(['unpack', ref, '-d', join(b.home, 'out'), '--remote', ...ca], b);
    await fails(['pull', `${host}/team/none:1`, ...ca], b);
    await fails(['push', ref, ...ca], { home: a.home, env: { KIT_CONFIG_HOME: join(a.home, 'nothing-here') } }, /kit login/);

    // Environment credentials that are wrong, and ones sent to a registry that is down.
    const envBad = await home({ KIT_REGISTRY_USERNAME: USER, KIT_REGISTRY_PASSWORD: `${SECRET}-not` });
    await ok(['pack', project, '-t', ref], envBad);
    await fails(['push', ref, ...ca], envBad);
    const down = `127.0.0.1:${await freePort()}`;
    const envGood = await home({ KIT_REGISTRY_USERNAME: USER, KIT_REGISTRY_PASSWORD: SECRET });
    await fails(['pull', `${down}/team/model:1`, ...ca], envGood);
    await fails(['login', down, '-u', USER, '--password-stdin', ...ca], { ...envGood, input: `${SECRET}\n` });

    // Docker's config.json with the secret, then a credential helper that fails.
    const d = await home();
    const docker = join(d.home, 'docker');
    await mkdir(docker, { recursive: true });
    await writeFile(join(docker, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER}:${SECRET}`).toString('base64') } } }));
    await ok(['pull', ref, ...ca], d);
    const bin = join(d.home, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'docker-credential-broken'), '#!/bin/sh\nread server\necho "cannot reach the keychain" >&2\nexit 1\n');
    await chmod(join(bin, 'docker-credential-broken'), 0o755);
    await writeFile(join(docker, 'config.json'), JSON.stringify({ credHelpers: { [host]: 'broken' } }));
    await fails(['pull', ref, ...ca], { ...d, env: { PATH: `${bin}:${process.env.PATH}` } });

    // A damaged credentials file holding the secret: the error names the file, not its content.
    const broken = await home();
    await mkdir(join(broken.home, 'config'), { recursive: true });
    await writeFile(join(broken.home, 'config', 'auth.json'), `{"auths": {"${host}": {"auth": "${Buffer.from(`${USER}:${SECRET}`).toString('base64')}"`);
    await fails(['pull', ref, ...ca], broken, /auth\.json/);
    await fails(['login', host, '-u', USER, '--password-stdin', ...ca], { ...broken, input: `${SECRET}\n` }, /auth\.json/);

    await ok(['logout', host], a);
    assert.deepEqual(await filesLeaking(a.home, new Set()), [], 'the secret stayed on disk after logout');
    for (const h of [b, d, envBad, envGood]) assert.deepEqual(await filesLeaking(h.home, new Set([join(h.home, 'docker', 'config.json')])), []);
  });

  it('token auth: login, push, pull, refusals, 5xx bursts', async () => {
    const host = token.registry.host;
    const a = await home();
    await fails(['login', host, '-u', USER, '--password-stdin'], { ...a, input: 'wrong-password\n' });
    await ok(['login', host, '-u', USER, '--password-stdin'], { ...a, input: `${SECRET}\n` });
    const ref = `${host}/team/model:1`;
    await ok(['pack', project, '-t', ref], a);
    await ok(['push', ref], a);
    await ok(['tag', '--remote', ref, `${host}/team/copy:1`], a);
    await ok(['pack', project, '-t', `${host}/locked/model:1`], a);
    await fails(['push', `${host}/locked/model:1`], a, /denied|unauthori[sz]ed|not allowed|permission/i);
    const b = { home: await tempDir('kit-secrets-home-'), env: { KIT_CONFIG_HOME: join(a.home, 'config') } };
    await ok(['pull', ref], b);

    // Bursts of 500s and 401s through a proxy, with a token in play, until kit gives up.
    const proxy = await startFaultProxy({
      target: token.registry.url,
      rules: [
        // Uploads only: the HEAD requests before them get the registry's challenge, so a token is in play.
        { kind: 'status-burst', status: 500, count: 1000, match: /\/blobs\/uploads\// },
      ],
    });
    try {
      const viaProxy = `${proxy.host}/team/burst:1`;
      const c = { home: await tempDir('kit-secrets-home-'), env: { KIT_REGISTRY_USERNAME: USER, KIT_REGISTRY_PASSWORD: SECRET } };
      await ok(['pack', project, '-t', viaProxy], c);
      await fails(['push', viaProxy, '--plain-http'], c);
      assert.ok(proxy.log.some((l) => typeof l.headers.authorization === 'string'), 'credentials were in play');
    } finally {
      await proxy.stop();
    }
    await ok(['logout', host], a);
    assert.deepEqual(await filesLeaking(a.home, new Set()), []);
  });

  it('no output of any command above holds the secret, its encodings or a bearer token', () => {
    assert.ok(outputs.length >= 30, `${outputs.length} commands ran`);
    const found: string[] = [];
    for (const r of outputs) {
      for (const where of ['stdout', 'stderr'] as const) {
        for (const l of leaks(r[where])) found.push(`kit ${r.args.join(' ')} (${where}): ${l}`);
      }
    }
    assert.deepEqual(found, []);
  });

  it('a credential helper failing after printing the credential does not get it quoted', async () => {
    const host = basic.registry.host;
    const d = await home();
    const bin = join(d.home, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'docker-credential-leaky'), `#!/bin/sh\nread server\necho '{"ServerURL":"'"$server"'","Username":"${USER}","Secret":"${SECRET.replace(/["\\]/g, '\\$&')}"}'\nexit 1\n`);
    await chmod(join(bin, 'docker-credential-leaky'), 0o755);
    await mkdir(join(d.home, 'docker'), { recursive: true });
    await writeFile(join(d.home, 'docker', 'config.json'), JSON.stringify({ credHelpers: { [host]: 'leaky' } }));
    const r = await kit(['pull', `${host}/team/model:1`, '--ca-cert', basic.caCert!, '-v'], { ...d, env: { PATH: `${bin}:${process.env.PATH}` } });
    assert.notEqual(r.code, 0);
    assert.deepEqual(leaks(r.stdout + r.stderr), []);
  });
});

describe("kit's credentials file", { skip }, () => {
  let setup: Setup;
  before(async () => {
    setup = await startSetup('tls-basic', { users: { [USER]: SECRET } });
  });
  after(async () => setup?.stop());

  it('is 0600 in a 0700 folder whatever the umask, replaced by rename, with no temp file left', async () => {
    const h = await tempDir('kit-secrets-file-');
    const cfg = join(h, 'config');
    const ca = ['--ca-cert', setup.caCert!];
    const login = (host: string) => kit(['login', host, '-u', USER, '--password-stdin', ...ca], { home: h, input: `${SECRET}\n`, umask: '000' });
    const first = await login(setup.registry.host);
    assert.equal(first.code, 0, first.stderr);
    const file = join(cfg, 'auth.json');
    const st1 = await stat(file);
    assert.equal(st1.mode & 0o777, 0o600);
    assert.equal((await stat(cfg)).mode & 0o777, 0o700);

    // A file the user left world-readable becomes private on the next write.
    await chmod(file, 0o644);
    const again = await login(`localhost:${setup.registry.host.split(':')[1]}`);
    assert.equal(again.code, 0, again.stderr);
    const st2 = await stat(file);
    assert.equal(st2.mode & 0o777, 0o600);
    assert.notEqual(st2.ino, st1.ino, 'a new file renamed into place, not rewritten in place');
    assert.deepEqual(await readdir(cfg), ['auth.json'], 'no temp file left');
    const saved = JSON.parse(await readFile(file, 'utf8')) as { auths: Record<string, unknown> };
    assert.equal(Object.keys(saved.auths).length, 2, 'both logins kept');

    const out = await kit(['logout', setup.registry.host], { home: h, umask: '000' });
    assert.equal(out.code, 0, out.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(cfg), ['auth.json']);
  });
});
