import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { parseEnvelope, parseStatement, preAuthEncoding, signEnvelope, statementBytes, statementCovers, statementFor, verifyEnvelope } from '../../../src/sign/dsse.js';
import { KitError } from '../../../src/errors.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as const;

describe('DSSE and in-toto statements', () => {
  it('encodes PAE as the DSSE v1 protocol gives it', () => {
    // The example of the DSSE protocol document.
    assert.equal(preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world')).toString(), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    // Lengths count bytes, not characters.
    assert.equal(preAuthEncoding('t', Buffer.from('é')).toString('latin1'), 'DSSEv1 1 t 2 \xc3\xa9');
  });

  it('signs over PAE and verifies; a changed payload or type does not verify', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const env = signEnvelope(privateKey, 'application/vnd.in-toto+json', Buffer.from('{"a":1}'));
    assert.ok(verifyEnvelope(publicKey, env));
    assert.ok(!verifyEnvelope(publicKey, { ...env, payload: Buffer.from('{"a":2}').toString('base64') }));
    assert.ok(!verifyEnvelope(publicKey, { ...env, payloadType: 'text/plain' }));
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.ok(!verifyEnvelope(other.publicKey, env));
  });

  it('builds an in-toto v1 statement about a manifest digest and reads it back', () => {
    const s = statementFor({ name: 'reg/repo', digest: DIGEST }, 'https://sigstore.dev/cosign/sign/v1', {});
    assert.deepEqual(JSON.parse(statementBytes(s).toString()), {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'reg/repo', digest: { sha256: 'ab'.repeat(32) } }],
      predicateType: 'https://sigstore.dev/cosign/sign/v1',
      predicate: {},
    });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const env = signEnvelope(privateKey, 'application/vnd.in-toto+json', statementBytes(s));
    const back = parseStatement(parseEnvelope(JSON.parse(JSON.stringify(env)), 't'), 't');
    assert.ok(statementCovers(back, DIGEST));
    assert.ok(!statementCovers(back, `sha256:${'cd'.repeat(32)}`));
  });

  it('refuses malformed envelopes and statements with a reason', () => {
    const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof KitError && e.code === 'SIGNATURE_INVALID' && re.test(e.message));
    bad(() => parseEnvelope({ payloadType: 'x', payload: 'e30=', signatures: [] }, 't'), /no signatures/);
    bad(() => parseEnvelope({ payload: 'e30=', signatures: [{ sig: 'AA==' }] }, 't'), /no payloadType/);
    bad(() => parseStatement({ payloadType: 'text/plain', payload: 'e30=', signatures: [{ sig: 'AA==' }] }, 't'), /payload type/);
    bad(() => parseStatement({ payloadType: 'application/vnd.in-toto+json', payload: Buffer.from('{"_type":"x"}').toString('base64'), signatures: [{ sig: 'AA==' }] }, 't'), /statement type/);
  });
});
