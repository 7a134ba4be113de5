import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cleanScopes, coversScopes, scopeKey, splitScopeParam } from '../../../src/registry/auth/scope.js';
import { TokenCache } from '../../../src/registry/auth/token-cache.js';

describe('scopes', () => {
  it('unites actions per resource, sorts, de-duplicates', () => {
    assert.deepEqual(cleanScopes(['repository:b:push', 'repository:a:pull', 'repository:b:pull', 'repository:a:pull']), [
      'repository:a:pull',
      'repository:b:pull,push',
    ]);
  });

  it('lets "*" stand for every action, drops scopes without action, keeps odd ones', () => {
    assert.deepEqual(cleanScopes(['repository:a:pull', 'repository:a:*', 'repository:c:', 'weird']), ['repository:a:*', 'weird']);
  });

  it('handles names with colons (a registry port in the name)', () => {
    assert.deepEqual(cleanScopes(['repository:localhost:5000/a:push', 'repository:localhost:5000/a:pull']), ['repository:localhost:5000/a:pull,push']);
  });

  it('gives equal keys for equal sets in any order', () => {
    assert.equal(scopeKey(['repository:a:push,pull', 'registry:catalog:*']), scopeKey(['registry:catalog:*', 'repository:a:pull', 'repository:a:push']));
    assert.equal(scopeKey([]), '');
  });

  it('splits a challenge scope parameter on spaces', () => {
    assert.deepEqual(splitScopeParam('repository:a:pull  repository:b:push'), ['repository:a:pull', 'repository:b:push']);
    assert.deepEqual(splitScopeParam(undefined), []);
  });

  it('knows when a granted set covers a wanted one', () => {
    assert.ok(coversScopes(['repository:a:pull,push'], ['repository:a:pull']));
    assert.ok(coversScopes(['repository:a:*'], ['repository:a:delete']));
    assert.ok(coversScopes(['repository:a:pull'], []));
    assert.ok(!coversScopes(['repository:a:pull'], ['repository:a:push']));
    assert.ok(!coversScopes(['repository:a:pull'], ['repository:b:pull']));
    assert.ok(!coversScopes([], ['repository:a:pull']));
  });
});

describe('TokenCache', () => {
  it('serves exact and covering sets until expiry', () => {
    let now = 1000;
    const cache = new TokenCache(() => now);
    return (async () => {
      await cache.obtain(['repository:a:push', 'repository:a:pull'], async () => ({ value: 'T1', expiresAt: 2000 }));
      assert.equal(cache.find(['repository:a:pull,push'])?.token.value, 'T1');
      assert.equal(cache.find(['repository:a:pull'])?.token.value, 'T1', 'a pull,push token serves a pull request');
      assert.equal(cache.find(['repository:b:pull']), undefined);
      now = 2000;
      assert.equal(cache.find(['repository:a:pull']), undefined, 'expired');
      assert.equal(cache.size, 0);
    })();
  });

  it('shares one fetch between concurrent callers', async () => {
    const cache = new TokenCache();
    let fetches = 0;
    const fetch = async (): Promise<{ value: string; expiresAt: number }> => {
      fetches++;
      await new Promise((r) => setTimeout(r, 10));
      return { value: 'T', expiresAt: Date.now() + 60_000 };
    };
    const tokens = await Promise.all([1, 2, 3, 4].map(() => cache.obtain(['repository:a:pull'], fetch)));
    assert.equal(fetches, 1);
    assert.deepEqual(new Set(tokens.map((t) => t.value)), new Set(['T']));
  });

  it('forgets a refused token only if it is still the stored one', async () => {
    const cache = new TokenCache();
    await cache.obtain(['repository:a:pull'], async () => ({ value: 'NEW', expiresAt: Date.now() + 60_000 }));
    cache.invalidate('repository:a:pull', 'OLD');
    assert.equal(cache.find(['repository:a:pull'])?.token.value, 'NEW');
    cache.invalidate('repository:a:pull', 'NEW');
    assert.equal(cache.find(['repository:a:pull']), undefined);
  });

  it('does not keep a failed fetch', async () => {
    const cache = new TokenCache();
    await assert.rejects(cache.obtain(['s:a:pull'], async () => Promise.reject(new Error('boom'))));
    const t = await cache.obtain(['s:a:pull'], async () => ({ value: 'ok', expiresAt: Date.now() + 1000 }));
    assert.equal(t.value, 'ok');
  });
});
