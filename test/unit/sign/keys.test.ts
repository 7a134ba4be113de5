import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, scryptSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { Readable } from 'node:stream';
import { KitError } from '../../../src/errors.js';
import { passwordSource } from '../../../src/sign/password.js';
import { generateKeyPair, keyHint, parsePrivateKey, parsePublicKey, pemDecode, signBytes, verifyBytes, PEM_SIGSTORE_PRIVATE } from '../../../src/sign/keys.js';

/**
 * cosign's own test key (pkg/cosign/keys_test.go, `pemsigstorekey`, password "hello"): made by
 * cosign, in the SIGSTORE PEM type, with the legacy scrypt strength older cosign wrote.
 */
const COSIGN_MADE_KEY = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
`;

const code = (c: string) => (err: unknown) => err instanceof KitError && err.code === c;

describe('the key password', () => {
  const noPrompt = async () => assert.fail('no prompt expected');
  it('comes from KIT_PASSWORD, else COSIGN_PASSWORD (empty allowed), asked once', async () => {
    const src = passwordSource({ env: { KIT_PASSWORD: 'a', COSIGN_PASSWORD: 'b' }, prompt: noPrompt });
    assert.equal(await src(), 'a');
    assert.equal(await passwordSource({ env: { COSIGN_PASSWORD: 'b' }, prompt: noPrompt })(), 'b');
    assert.equal(await passwordSource({ env: { COSIGN_PASSWORD: '' }, prompt: noPrompt })(), '');
  });

  it('else from the first line of stdin when it is not a terminal; refused when stdin is empty', async () => {
    const stdin = (text: string[]) => Object.assign(Readable.from(text), { isTTY: false }) as unknown as NodeJS.ReadStream;
    assert.equal(await passwordSource({ env: {}, stdin: stdin(['s3cret\n', 'ignored\n']), prompt: noPrompt })(), 's3cret');
    await assert.rejects(passwordSource({ env: {}, stdin: stdin([]), prompt: noPrompt })(), code('PASSWORD_REQUIRED'));
  });

  it('else typed at a prompt on a terminal, twice for a new key', async () => {
    const tty = Object.assign(Readable.from([]), { isTTY: true }) as unknown as NodeJS.ReadStream;
    const answers = ['x', 'y'];
    await assert.rejects(passwordSource({ env: {}, stdin: tty, confirm: true, prompt: async () => answers.shift()! })(), code('PASSWORD_MISMATCH'));
    assert.equal(await passwordSource({ env: {}, stdin: tty, prompt: async () => 'typed' })(), 'typed');
  });
});

describe('keys in cosign format', () => {
  it('generates a key pair that decrypts with the documented parameters (scrypt N=65536 r=8 p=1, nacl secretbox, PKCS#8 inside)', async () => {
    const pair = await generateKeyPair('correct horse');
    const block = pemDecode(pair.privatePem, 'test');
    assert.equal(block.type, PEM_SIGSTORE_PRIVATE);
    // Decrypted here without kit's code: Node's scrypt and tweetnacl, as the format documents it.
    const doc = JSON.parse(block.bytes.toString()) as { kdf: { params: { N: number; r: number; p: number }; salt: string }; cipher: { nonce: string }; ciphertext: string };
    assert.deepEqual(doc.kdf.params, { N: 65536, r: 8, p: 1 });
    const key = scryptSync('correct horse', Buffer.from(doc.kdf.salt, 'base64'), 32, { N: 65536, r: 8, p: 1, maxmem: 256 * 1024 * 1024 });
    const der = nacl.secretbox.open(Buffer.from(doc.ciphertext, 'base64'), Buffer.from(doc.cipher.nonce, 'base64'), key);
    assert.ok(der, 'secretbox opens with the scrypt-derived key');
    const priv = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    assert.equal(priv.asymmetricKeyType, 'ec');
    assert.equal(priv.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    // The public PEM is PKIX (SubjectPublicKeyInfo) of the same key.
    assert.match(pair.publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(createPublicKey(pair.publicPem).export({ format: 'jwk' }).x, createPublicKey(priv).export({ format: 'jwk' }).x);
  });

  it('reads the private key it wrote (password asked only for encrypted keys) and signs what the public key verifies', async () => {
    const pair = await generateKeyPair('pw');
    let asked = 0;
    const priv = await parsePrivateKey(pair.privatePem, async () => (asked++, 'pw'));
    assert.equal(asked, 1);
    const pub = parsePublicKey(pair.publicPem);
    const sig = signBytes(priv, Buffer.from('data'));
    assert.ok(verifyBytes(pub, Buffer.from('data'), sig));
    assert.ok(!verifyBytes(pub, Buffer.from('datA'), sig));
    assert.ok(!verifyBytes(pub, Buffer.from('data'), Buffer.from('not a signature')));
  });

  it('reads a key made by cosign (SIGSTORE PEM type, legacy scrypt strength)', async () => {
    const priv = await parsePrivateKey(COSIGN_MADE_KEY, async () => 'hello');
    const sig = signBytes(priv, Buffer.from('x'));
    assert.ok(verifyBytes(createPublicKey(priv), Buffer.from('x'), sig));
  });

  it('reads the older ENCRYPTED COSIGN PRIVATE KEY type too', async () => {
    const pair = await generateKeyPair('pw');
    const older = pair.privatePem.replaceAll('ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY');
    await parsePrivateKey(older, async () => 'pw');
  });

  it('refuses a wrong password, a public key given as private, a private key given as public, and non-PEM', async () => {
    const pair = await generateKeyPair('pw');
    await assert.rejects(parsePrivateKey(pair.privatePem, async () => 'nope'), code('KEY_PASSWORD_WRONG'));
    await assert.rejects(parsePrivateKey(pair.publicPem, async () => 'pw'), code('KEY_INVALID'));
    assert.throws(() => parsePublicKey(pair.privatePem), code('KEY_INVALID'));
    assert.throws(() => parsePublicKey('hello'), code('KEY_INVALID'));
  });

  it('refuses algorithms cosign would sign differently (Ed25519ph) or weakly (RSA 1024)', async () => {
    const ed = generateKeyPairSync('ed25519');
    await assert.rejects(parsePrivateKey(ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, async () => ''), code('KEY_INVALID'));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.throws(() => parsePublicKey(rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string), code('KEY_INVALID'));
  });

  it('names a key in a bundle by base64(sha256(PKIX DER))', async () => {
    const pair = await generateKeyPair('pw');
    const der = pair.publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(keyHint(pair.publicKey), createHash('sha256').update(der).digest('base64'));
  });
});
