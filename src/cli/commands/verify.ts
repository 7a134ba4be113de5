import type { Command } from 'commander';
import { repeat } from '../options.js';
import { printJson, printLine } from '../output.js';
import { addSupplyChainOptions, supplyChainMode, supplyChainSettings, type SupplyChainFlags } from './sign.js';

export function registerVerify(program: Command): void {
  addSupplyChainOptions(
    program
      .command('verify')
      .argument('<ref>', 'artifact to verify, by tag or digest')
      .description('check that an artifact carries a valid signature (bundle or legacy cosign format) for a public key')
      .requiredOption('--key <file>', 'public key (cosign.pub); repeat to accept any of several', repeat)
      .option('--type <type>', 'require a valid attestation of this type (slsaprovenance1, cyclonedx, ... or a URI) instead of a signature')
      .option('--json', 'print what was verified, and what was refused and why, as JSON')
      .addHelpText(
        'after',
        '\nExits 0 when a valid signature (or attestation, with --type) is found, 1 otherwise with the\nreason each candidate was refused.\n\nExamples:\n  kit verify registry.example.com/team/model:1.0 --key cosign.pub\n  kit verify registry.example.com/team/model:1.0 --key cosign.pub --type slsaprovenance1 --json',
      ),
  ).action(async (ref: string, o: SupplyChainFlags & { key: string[]; type?: string; json?: boolean }) => {
    const mode = supplyChainMode(o);
    const [{ loadPublicKey }, { openSubject }, { verifyArtifact, VerifyError }, { predicateTypeOf }] = await Promise.all([
      import('../../sign/keys.js'),
      import('../../sign/open.js'),
      import('../../sign/verify.js'),
      import('../../sign/media.js'),
    ]);
    const keys = await Promise.all(o.key.map((k) => loadPublicKey(k)));
    const subject = await openSubject(ref, mode, supplyChainSettings(o));
    try {
      const r = await verifyArtifact(subject.site, subject.ref, { keys, display: ref, ...(o.type !== undefined ? { require: predicateTypeOf(o.type) } : {}) });
      if (o.json) return printJson(r);
      printLine(`Verified ${ref} (${r.digest})${r.where === 'remote' ? ' in the registry' : ''}:`);
      for (const i of r.verified) printLine(`  ${i.format} ${i.kind}${i.predicateType && i.kind === 'attestation' ? ` ${i.predicateType}` : ''} ${i.manifest}${i.tag ? ` (${i.tag})` : ''}`);
      for (const i of r.rejected) printLine(`  refused: ${i.format} ${i.kind} ${i.manifest}: ${i.reason}`);
    } catch (err) {
      if (o.json && err instanceof VerifyError) printJson(err.report);
      throw err;
    }
  });
}
