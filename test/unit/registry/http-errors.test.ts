import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { RegistryHttpError, displayUrl, oneLine, registryError } from '../../../src/registry/errors.js';
import type { RegistryResponse } from '../../../src/registry/types.js';
import { ExitCode } from '../../../src/errors.js';

function response(status: number, body: string, url = 'https://reg.example.com/v2/team/model/manifests/1'): RegistryResponse {
  const stream = Readable.from([Buffer.from(body)]);
  return {
    status,
    headers: {},
    url,
    body: stream,
    text: async () => {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    dump: async () => void stream.destroy(),
  };
}

const ociBody = (code: string, message: string): string => JSON.stringify({ errors: [{ code, message, detail: { x: 1 } }] });

describe('registryError', () => {
  it('maps 404 to NOT_FOUND with exit code 3 and the registry message', async () => {
    const e = await registryError(response(404, ociBody('MANIFEST_UNKNOWN', 'manifest unknown')), 'fetch manifest', 'reg.example.com/team/model:1');
    assert.ok(e instanceof RegistryHttpError);
    assert.equal(e.code, 'NOT_FOUND');
    assert.equal(e.exitCode, ExitCode.notFound);
    assert.equal(e.message, 'fetch manifest reg.example.com/team/model:1: reg.example.com answered 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)');
    assert.equal(e.status, 404);
    assert.deepEqual(e.registryErrors, [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { x: 1 } }]);
  });

  it('maps 401 to UNAUTHORIZED with a kit login hint naming the registry', async () => {
    const e = await registryError(response(401, ociBody('UNAUTHORIZED', 'authentication required'), 'https://registry-1.docker.io/v2/library/x/manifests/1'), 'fetch manifest');
    assert.equal(e.code, 'UNAUTHORIZED');
    assert.match(e.hint ?? '', /kit login docker\.io/);
    assert.match(e.message, /docker\.io answered 401/);
  });

  it('maps 403, 429 and 5xx', async () => {
    assert.equal((await registryError(response(403, ''), 'push')).code, 'DENIED');
    assert.equal((await registryError(response(429, ociBody('TOOMANYREQUESTS', 'slow down')), 'pull')).code, 'TOO_MANY_REQUESTS');
    const e = await registryError(response(502, '<html>bad gateway</html>'), 'pull');
    assert.equal(e.code, 'REGISTRY_ERROR');
    assert.match(e.message, /502 Bad Gateway$/);
  });

  it('keeps a hostile message on one line, without control characters, and bounded', async () => {
    const evil = `line1\nline2\r\u001b[31mred\u001b[0m ${'x'.repeat(2000)}`;
    const e = await registryError(response(400, ociBody('DENIED', evil)), 'push');
    assert.ok(!/[\n\r\u001b]/.test(e.message), e.message);
    assert.ok(e.message.length <= 500);
  });

  it('survives a body that is not JSON or too large', async () => {
    const e = await registryError(response(500, 'x'.repeat(200_000)), 'pull');
    assert.equal(e.message, 'pull: reg.example.com answered 500 Internal Server Error');
  });
});

describe('message helpers', () => {
  it('leaves query strings (signatures) out of URLs', () => {
    assert.equal(displayUrl('https://s3.example.com/bucket/blob?X-Amz-Signature=secret'), 'https://s3.example.com/bucket/blob');
  });

  it('collapses text to one line', () => {
    assert.equal(oneLine('a\n\tb  c'), 'a b c');
  });
});
