import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';
import { addSupplyChainOptions, loadSigningKey, supplyChainMode, supplyChainSettings, type SupplyChainFlags } from './sign.js';

export function registerAttest(program: Command): void {
  addSupplyChainOptions(
    program
      .command('attest')
      .argument('<ref>', 'artifact the attestation is about, by tag or digest')
      .description('sign an in-toto attestation (provenance, SBOM, ...) about an artifact and attach it')
      .requiredOption('--key <file>', 'private key (cosign.key)')
      .requiredOption('--type <type>', 'predicate type: slsaprovenance1, spdxjson, cyclonedx, custom, ... or a URI')
      .option('--predicate <file>', 'the predicate (JSON; any text with --type custom); default: the document `kit pack --provenance` attached')
      .option('--legacy', "cosign's older format: a DSSE layer in the sha256-<hex>.att tag")
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        '\nExamples:\n  kit attest registry.example.com/team/model:1.0 --key cosign.key --type slsaprovenance1\n  kit attest registry.example.com/team/model:1.0 --key cosign.key --type cyclonedx --predicate bom.json',
      ),
  ).action(async (ref: string, o: SupplyChainFlags & { key: string; type: string; predicate?: string; legacy?: boolean; json?: boolean }) => {
    const mode = supplyChainMode(o);
    const [{ predicateTypeOf }, { openSubject }, { attestArtifact }] = await Promise.all([import('../../sign/media.js'), import('../../sign/open.js'), import('../../sign/attest.js')]);
    predicateTypeOf(o.type); // a usage error before the password prompt
    const key = await loadSigningKey(o.key);
    const subject = await openSubject(ref, mode, supplyChainSettings(o));
    const r = await attestArtifact(subject.site, subject.ref, subject.name, {
      key,
      type: o.type,
      ...(o.predicate !== undefined ? { predicateFile: o.predicate } : {}),
      legacy: o.legacy === true,
    });
    if (o.json) return printJson({ reference: ref, ...r });
    printLine(`Attested ${ref} (${r.subject}): ${r.predicateType} (predicate: ${r.predicateSource})`);
    printLine(r.format === 'legacy' ? `Attestation: ${r.tag} (${r.attestation})` : `Attestation: sigstore bundle referrer ${r.attestation}`);
  });
}
