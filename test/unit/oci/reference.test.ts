import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatReference, familiarRepository, parseReference, parseReferenceWithDefaultTag } from '../../../src/oci/reference.js';
import { KitError } from '../../../src/errors.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it('parses registry, port, nested repository, tag and digest', () => {
    const r = parseReference(`registry.example.com:5000/team/sub/model:1.0@${D}`);
    assert.deepEqual(r, { registry: 'registry.example.com:5000', repository: 'team/sub/model', tag: '1.0', digest: D });
    assert.equal(formatReference(r), `registry.example.com:5000/team/sub/model:1.0@${D}`);
  });

  it('applies Docker Hub defaults', () => {
    assert.deepEqual(parseReference('model:1'), { registry: 'docker.io', repository: 'library/model', tag: '1' });
    assert.deepEqual(parseReference('team/model'), { registry: 'docker.io', repository: 'team/model' });
    assert.equal(parseReference('index.docker.io/team/m:1').registry, 'docker.io');
    assert.equal(familiarRepository(parseReference('model:1')), 'model');
    assert.equal(familiarRepository(parseReference('reg.io/a/b:1')), 'reg.io/a/b');
  });

  it('recognises localhost, IPv4 and IPv6 hosts', () => {
    assert.equal(parseReference('localhost/m:1').registry, 'localhost');
    assert.equal(parseReference('localhost:5000/m').registry, 'localhost:5000');
    assert.equal(parseReference('127.0.0.1:5000/a/m:t').registry, '127.0.0.1:5000');
    assert.equal(parseReference('[::1]:5000/a/m:t').registry, '[::1]:5000');
  });

  it('adds latest only when asked and when there is no digest', () => {
    assert.equal(parseReferenceWithDefaultTag('r.io/m').tag, 'latest');
    assert.equal(parseReferenceWithDefaultTag(`r.io/m@${D}`).tag, undefined);
  });

  for (const bad of ['', 'UPPER/case', 'r.io/a//b', 'r.io/m:bad tag', 'r.io/m:-x', 'https://r.io/m', `r.io/m@sha256:abc`, 'r.io:99999/m', 'r.io/m:' + 'x'.repeat(200)]) {
    it(`refuses ${JSON.stringify(bad).slice(0, 40)}`, () => {
      assert.throws(() => parseReference(bad), (e: unknown) => e instanceof KitError && e.code === 'REFERENCE_INVALID');
    });
  }
});
