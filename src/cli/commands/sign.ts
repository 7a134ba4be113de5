import { InvalidArgumentError, type Command } from 'commander';
import { ExitCode, KitError } from '../../errors.js';
import { printJson, printLine } from '../output.js';
import type { RegistrySettings } from '../../registry/types.js';
import { readSecret } from '../secret-input.js';

/**
 * Registry flags for the supply-chain commands. `--key` names the signing key there (as in
 * cosign), so the mutual-TLS client certificate and key are `--client-cert` / `--client-key`.
 */
export interface SupplyChainFlags {
  plainHttp?: boolean;
  tlsVerify?: boolean;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  proxy?: string;
  remote?: boolean;
  local?: boolean;
}

export function addSupplyChainOptions(cmd: Command): Command {
  return cmd
    .option('-r, --remote', 'work on the artifact in its registry (default: the local store when it has it, else the registry)')
    .option('--local', 'work on the artifact in the local store only')
    .option('--plain-http', 'talk to the registry over plain HTTP')
    .option('--tls-verify <bool>', 'verify the registry certificate (default true)', (v: string) => {
      if (/^(true|1|yes)$/i.test(v)) return true;
      if (/^(false|0|no)$/i.test(v)) return false;
      throw new InvalidArgumentError('expected true or false');
    })
    .option('--ca-cert <file>', 'extra CA certificate(s) to trust, PEM')
    .option('--client-cert <file>', 'client certificate for mutual TLS with the registry, PEM')
    .option('--client-key <file>', 'client key for mutual TLS with the registry, PEM')
    .option('--proxy <url>', 'HTTP(S) proxy for the registry');
}

export function supplyChainMode(o: SupplyChainFlags): 'local' | 'remote' | 'local-first' {
  if (o.remote && o.local) throw new KitError('FLAGS_CONFLICT', '--remote and --local cannot be used together', { exitCode: ExitCode.usage });
  return o.remote ? 'remote' : o.local ? 'local' : 'local-first';
}

export function supplyChainSettings(o: SupplyChainFlags): RegistrySettings {
  const s: RegistrySettings = {};
  if (o.plainHttp) s.plainHttp = true;
  if (o.tlsVerify !== undefined) s.tlsVerify = o.tlsVerify;
  if (o.caCert) s.caCert = o.caCert;
  if (o.clientCert) s.cert = o.clientCert;
  if (o.clientKey) s.key = o.clientKey;
  if (o.proxy) s.proxy = o.proxy;
  return s;
}

/** The private key named by --key, its password asked only if it is encrypted. */
export async function loadSigningKey(path: string) {
  const [{ loadPrivateKey }, { passwordSource }] = await Promise.all([import('../../sign/keys.js'), import('../../sign/password.js')]);
  return loadPrivateKey(path, passwordSource({ prompt: (q) => readSecret({ fromStdin: false, prompt: q }) }));
}

export function registerSign(program: Command): void {
  addSupplyChainOptions(
    program
      .command('sign')
      .argument('<ref>', 'artifact to sign, by tag or digest')
      .description('sign the manifest digest of an artifact and attach the signature to it (local store or registry)')
      .requiredOption('--key <file>', 'private key (cosign.key, from `kit key generate` or `cosign generate-key-pair`)')
      .option('--legacy', "cosign's older format: a Simple Signing layer in the sha256-<hex>.sig tag")
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        '\nDefault format: a sigstore bundle v0.3 (DSSE over an in-toto statement, predicate\nhttps://sigstore.dev/cosign/sign/v1) attached as an OCI referrer, with the sha256-<hex> tag\nfallback where the registry has no referrers API. The key password comes from KIT_PASSWORD\n(or COSIGN_PASSWORD), a prompt, or stdin.\n\nExamples:\n  kit sign registry.example.com/team/model:1.0 --key cosign.key\n  kit sign registry.example.com/team/model:1.0 --key cosign.key --remote --legacy',
      ),
  ).action(async (ref: string, o: SupplyChainFlags & { key: string; legacy?: boolean; json?: boolean }) => {
    const mode = supplyChainMode(o);
    const key = await loadSigningKey(o.key);
    const [{ openSubject }, { signArtifact }] = await Promise.all([import('../../sign/open.js'), import('../../sign/sign.js')]);
    const subject = await openSubject(ref, mode, supplyChainSettings(o));
    const r = await signArtifact(subject.site, subject.ref, subject.name, { key, legacy: o.legacy === true });
    if (o.json) return printJson({ reference: ref, ...r });
    printLine(`Signed ${ref} (${r.subject}) ${r.where === 'local' ? 'in the local store' : 'in the registry'}`);
    printLine(r.format === 'legacy' ? `Signature: ${r.tag} (${r.signature})` : `Signature: sigstore bundle referrer ${r.signature}`);
  });
}
