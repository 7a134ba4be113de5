import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { verifyLogin } from '../../../src/registry/credentials/index.js';
import { KitError } from '../../../src/errors.js';
import { basic, isolateEnv, json, startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
before(isolateEnv);
after(() => Promise.all(servers.map((s) => s.close())));

const SECRET = 'Login-S3cret-value';

async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler);
  servers.push(s);
  return s;
}

const failedLogin = (e: unknown): boolean => {
  assert.ok(e instanceof KitError && e.code === 'LOGIN_FAILED', String(e));
  assert.ok(e.hint);
  assert.ok(!`${e.message} ${e.hint}`.includes(SECRET));
  return true;
};

describe('verifyLogin', () => {
  it('accepts credentials a Basic registry accepts, refuses others', async () => {
    const reg = await server((s, res) => {
      if (s.headers.authorization !== basic('u', SECRET)) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' });
        return res.end();
      }
      json(res, 200, {});
    });
    await verifyLogin(reg.host, { username: 'u', password: SECRET }, { plainHttp: true });
    await assert.rejects(verifyLogin(reg.host, { username: 'u', password: `${SECRET}-wrong` }, { plainHttp: true }), failedLogin);
  });

  it('fails when the token server refuses the credentials', async () => {
    const auth = await server((s, res) => json(res, 401, { details: `incorrect username or password: ${s.headers.authorization}` }));
    const reg = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${auth.origin}/token",service="svc"` });
      res.end();
    });
    await assert.rejects(verifyLogin(reg.host, { username: 'u', password: SECRET }, { plainHttp: true }), failedLogin);
    // `docker login` asks for a token with no scope.
    const q = new URL(auth.seen[0]!.url, 'http://x').searchParams;
    assert.equal(q.get('service'), 'svc');
    assert.deepEqual(q.getAll('scope'), []);
  });

  it('succeeds with a token registry that issues a token', async () => {
    const auth = await server((_s, res) => json(res, 200, { token: 'good' }));
    const reg = await server((s, res) => {
      if (s.headers.authorization !== 'Bearer good') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${auth.origin}/token",service="svc"` });
        return res.end();
      }
      json(res, 200, {});
    });
    await verifyLogin(reg.host, { username: 'u', password: SECRET }, { plainHttp: true });
    assert.equal(auth.seen[0]?.headers.authorization, basic('u', SECRET));
  });
});
