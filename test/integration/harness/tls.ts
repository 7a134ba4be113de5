/**
 * Test PKI made with the `openssl` CLI: a CA, a server certificate for the loopback names, a
 * client certificate for mutual TLS, and (for the token server) an RSA signing chain.
 *
 * Why the CLI and not node:crypto: Node can make keys but cannot issue X.509 certificates, and the
 * real registry (Go's crypto/x509) is strict about what it accepts, so we let openssl write
 * ordinary, standards-shaped certificates instead of hand-rolling DER.
 *
 * Go's verifier insists on: basicConstraints CA:TRUE on the issuer, keyCertSign in its keyUsage,
 * SANs (it ignores the CN for host names), and positive serial numbers. Each of those is set
 * explicitly below so the result does not depend on the local openssl.cnf.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPki {
  /** PEM path of the CA certificate: what clients trust (and the registry's clientcas for mTLS). */
  caCert: string;
  /** PEM path of the server certificate (SAN IP 127.0.0.1, IP ::1, DNS localhost), signed by the CA. */
  serverCert: string;
  serverKey: string;
  /** PEM path of a client certificate (extendedKeyUsage clientAuth), signed by the CA. */
  clientCert: string;
  clientKey: string;
}

export interface SigningChain {
  /** PEM path of the root that the registry's `rootcertbundle` names. */
  caCert: string;
  /** PEM path of the leaf certificate whose key signs tokens (goes into the JWT `x5c`). */
  cert: string;
  /** PEM path of the leaf's RSA private key (PKCS#8). */
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/** A random positive serial: `-set_serial` avoids the `.srl` file and collisions between runs. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // high bit clear (positive), never zero
  return `0x${b.toString('hex')}`;
}

type KeyKind = 'ec' | 'rsa';

async function newKey(dir: string, file: string, kind: KeyKind): Promise<string> {
  const path = join(dir, file);
  const algo = kind === 'ec' ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
  await openssl(['genpkey', ...algo, '-out', path], dir);
  return path;
}

/** A self-signed CA. Valid from a day ago so small clock differences never matter. */
async function newCa(dir: string, name: string, cn: string, kind: KeyKind): Promise<{ cert: string; key: string }> {
  const key = await newKey(dir, `${name}.key`, kind);
  const ext = join(dir, `${name}.ext`);
  await writeFile(
    ext,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = v3_ca',
      'prompt = no',
      '[dn]',
      `CN = ${cn}`,
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  const cert = join(dir, `${name}.pem`);
  await openssl(['req', '-x509', '-new', '-key', key, '-config', ext, '-sha256', '-days', '30', '-set_serial', serial(), '-out', cert], dir);
  return { cert, key };
}

/** A leaf signed by `ca`, with exactly the extensions given (openssl x509 -req copies none from the CSR). */
async function newLeaf(dir: string, name: string, cn: string, ca: { cert: string; key: string }, kind: KeyKind, extensions: string[]): Promise<{ cert: string; key: string }> {
  const key = await newKey(dir, `${name}.key`, kind);
  const csr = join(dir, `${name}.csr`);
  await openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr], dir);
  const ext = join(dir, `${name}.ext`);
  await writeFile(
    ext,
    ['basicConstraints = critical, CA:FALSE', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid, issuer', ...extensions, ''].join('\n'),
  );
  const cert = join(dir, `${name}.pem`);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(), '-days', '30', '-sha256', '-extfile', ext, '-out', cert], dir);
  return { cert, key };
}

/**
 * Make a CA plus server and client certificates under `dir` (created if missing).
 * EC P-256 keys: fast to generate, accepted by Go's TLS stack and by Node/undici.
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const ca = await newCa(dir, 'ca', 'kit test CA', 'ec');
  const [server, client] = await Promise.all([
    newLeaf(dir, 'server', '127.0.0.1', ca, 'ec', [
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      // Go ignores the CN for name checks: the SANs are what clients match against.
      'subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost',
    ]),
    newLeaf(dir, 'client', 'kit-test-client', ca, 'ec', ['keyUsage = critical, digitalSignature', 'extendedKeyUsage = clientAuth']),
  ]);
  return { caCert: ca.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
}

/**
 * A root plus an RSA leaf for signing registry tokens (RS256). The registry is given only the root
 * (`rootcertbundle`) and must chain the leaf from the JWT's `x5c` header to it, which is the
 * realistic path; a self-signed leaf listed in the bundle would hide chain-building bugs.
 */
export async function makeSigningChain(dir: string): Promise<SigningChain> {
  await mkdir(dir, { recursive: true });
  const ca = await newCa(dir, 'token-ca', 'kit test token CA', 'rsa');
  // distribution 2.8 verifies the chain with ExtKeyUsageAny, so no EKU is needed; digitalSignature
  // states what the key is for.
  const leaf = await newLeaf(dir, 'token-signer', 'kit test token signer', ca, 'rsa', ['keyUsage = critical, digitalSignature']);
  return { caCert: ca.cert, cert: leaf.cert, key: leaf.key };
}
