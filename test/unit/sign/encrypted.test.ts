import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decryptWithPassword, encryptWithPassword } from '../../../src/sign/encrypted.js';
import { KitError } from '../../../src/errors.js';

/**
 * Known-answer vectors of the format cosign encrypts its keys in: go-securesystemslib's
 * encrypted package test data (passphrase "supersecret") at the three strengths it writes
 * (legacy N=32768, standard N=65536, OWASP N=131072). They were made by its Marshal, so the
 * plaintext is the JSON form of the bytes "reallyimportant" (a base64 string in quotes).
 */
const VECTORS: Record<string, string> = {
  legacy: '{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"WO3mVvyTwJ9vwT5/Tk5OW5WPIBUofMjcpEfrLnfY4uA="},"cipher":{"name":"nacl/secretbox","nonce":"tCy7HcTFr4uxv4Nrg/DWmncuZ148U1MX"},"ciphertext":"08n43p5G5yviPEZpO7tPPF4aZQkWiWjkv4taFdhDBA0tamKH4nw="}',
  standard: '{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"FhzPOt9/bJG4PTq6lQ6ecG6GzaOuOy/ynG5+yRiFlNs="},"cipher":{"name":"nacl/secretbox","nonce":"aw1ng1jHaDz/tQ7V2gR9O2+IGQ8xJEuE"},"ciphertext":"HycvuLZL4sYH0BrYTh4E/H20VtAW6u5zL5Pr+IBjYLYnCPzDkq8="}',
  owasp: '{"kdf":{"name":"scrypt","params":{"N":131072,"r":8,"p":1},"salt":"m38E3kouJTtiheLQN22NQ8DTito5hrjpUIskqcd375k="},"cipher":{"name":"nacl/secretbox","nonce":"Y6PM13yA+o44pE/W1ZBwczeGnTV/m9Zc"},"ciphertext":"6H8sqj1K6B6yDjtH5AQ6lbFigg/C2yDDJc4rYJ79w9aVPImFIPI="}',
};

const code = (c: string) => (err: unknown) => err instanceof KitError && err.code === c;

describe('password encryption (cosign / go-securesystemslib format)', () => {
  for (const [name, doc] of Object.entries(VECTORS)) {
    it(`decrypts the ${name}-strength known-answer vector`, async () => {
      const plain = await decryptWithPassword(Buffer.from(doc), 'supersecret');
      assert.equal(Buffer.from(JSON.parse(plain.toString()) as string, 'base64').toString(), 'reallyimportant');
    });
  }

  it('refuses a wrong password as KEY_PASSWORD_WRONG', async () => {
    await assert.rejects(decryptWithPassword(Buffer.from(VECTORS['standard']!), 'supersecreT'), code('KEY_PASSWORD_WRONG'));
  });

  it('refuses scrypt parameters it does not write, before spending on them (DoS by a forged file)', async () => {
    const forged = VECTORS['standard']!.replace('"N":65536', '"N":1048576');
    await assert.rejects(decryptWithPassword(Buffer.from(forged), 'supersecret'), (err: unknown) => err instanceof KitError && err.code === 'KEY_INVALID' && /unsupported scrypt parameters/.test(err.message));
    await assert.rejects(decryptWithPassword(Buffer.from(VECTORS['standard']!.replace('"r":8', '"r":99')), 'supersecret'), code('KEY_INVALID'));
  });

  it('refuses a tampered ciphertext (Poly1305 authenticates it)', async () => {
    const doc = JSON.parse(VECTORS['standard']!) as { ciphertext: string };
    const ct = Buffer.from(doc.ciphertext, 'base64');
    ct[0] = ct[0]! ^ 1;
    doc.ciphertext = ct.toString('base64');
    await assert.rejects(decryptWithPassword(Buffer.from(JSON.stringify(doc)), 'supersecret'), code('KEY_PASSWORD_WRONG'));
  });

  it('writes N=65536 r=8 p=1, a 32-byte salt and a 24-byte nonce, and reads its own output', async () => {
    const enc = await encryptWithPassword(Buffer.from('payload'), 'pw');
    const doc = JSON.parse(enc.toString()) as { kdf: { name: string; params: unknown; salt: string }; cipher: { name: string; nonce: string } };
    assert.equal(doc.kdf.name, 'scrypt');
    assert.deepEqual(doc.kdf.params, { N: 65536, r: 8, p: 1 });
    assert.equal(Buffer.from(doc.kdf.salt, 'base64').length, 32);
    assert.equal(doc.cipher.name, 'nacl/secretbox');
    assert.equal(Buffer.from(doc.cipher.nonce, 'base64').length, 24);
    assert.equal((await decryptWithPassword(enc, 'pw')).toString(), 'payload');
  });
});
