import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bearerOf, parseChallenges } from '../../../src/registry/auth/challenge.js';
import { KitError } from '../../../src/errors.js';

const invalid = (e: unknown): boolean => e instanceof KitError && e.code === 'AUTH_CHALLENGE_INVALID';

describe('parseChallenges (RFC 7235)', () => {
  it('reads a distribution Bearer challenge', () => {
    const [c, ...rest] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"');
    assert.equal(rest.length, 0);
    assert.deepEqual(c, {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull' },
    });
  });

  it('is case-insensitive for scheme and parameter names, keeps values as sent', () => {
    const [c] = parseChallenges('BEARER Realm="https://A/token", SERVICE=Reg.IO');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://A/token', service: 'Reg.IO' } });
  });

  it('keeps commas and escaped quotes inside quoted strings', () => {
    const [c] = parseChallenges('Bearer realm="https://a/token", scope="repository:a:pull,push repository:b:pull", error="say \\"hi\\", \\\\ok"');
    assert.equal(c?.params['scope'], 'repository:a:pull,push repository:b:pull');
    assert.equal(c?.params['error'], 'say "hi", \\ok');
  });

  it('splits several challenges in one header (the RFC 7235 example)', () => {
    const cs = parseChallenges('Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"');
    assert.deepEqual(cs, [
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
    ]);
  });

  it('accepts white space around "=" and "," and empty list elements', () => {
    const cs = parseChallenges(' , Basic realm = "x" ,, Bearer realm="y" , service = s ,');
    assert.deepEqual(cs, [
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'y', service: 's' } },
    ]);
  });

  it('reads token68 and schemes without parameters', () => {
    assert.deepEqual(parseChallenges('Negotiate abc+/=='), [{ scheme: 'negotiate', params: {}, token68: 'abc+/==' }]);
    assert.deepEqual(parseChallenges('Negotiate, Basic realm="r"'), [
      { scheme: 'negotiate', params: {} },
      { scheme: 'basic', params: { realm: 'r' } },
    ]);
    assert.deepEqual(parseChallenges('Basic'), [{ scheme: 'basic', params: {} }]);
  });

  it('gives nothing for an empty header', () => {
    assert.deepEqual(parseChallenges(''), []);
    assert.deepEqual(parseChallenges('  '), []);
  });

  it('keeps a "__proto__" parameter as plain data', () => {
    const [c] = parseChallenges('Bearer __proto__="x", realm="r"');
    assert.equal(Object.getPrototypeOf(c?.params), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(c?.params, '__proto__')?.value, 'x');
  });

  for (const bad of [
    'Bearer realm="unterminated',
    'Bearer realm="a" service="b"', // missing comma
    'Bearer realm="a", service=',
    'Bearer ="x"',
    'Bearer realm="a", realm="b"', // duplicate parameter
    'Bearer realm="a\u0001b"',
    '"Bearer" realm="a"',
    'Bearer realm="a"; service="b"',
    'Bearer realm="x\\',
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseChallenges(bad), invalid);
    });
  }
});

describe('bearerOf', () => {
  it('extracts realm, service, scope and error', () => {
    const [c] = parseChallenges('Bearer realm="https://a/t",service="s",scope="repository:x:pull",error="insufficient_scope"');
    assert.deepEqual(bearerOf(c!), { realm: 'https://a/t', service: 's', scope: 'repository:x:pull', error: 'insufficient_scope' });
  });

  it('refuses a Bearer challenge without realm and ignores other schemes', () => {
    assert.throws(() => bearerOf(parseChallenges('Bearer service="s"')[0]!), invalid);
    assert.equal(bearerOf(parseChallenges('Basic realm="r"')[0]!), undefined);
  });
});
