import type { Command } from 'commander';
import { printJson, printLine, renderTable } from '../output.js';
import { addSupplyChainOptions, supplyChainMode, supplyChainSettings, type SupplyChainFlags } from './sign.js';

export function registerReferrers(program: Command): void {
  addSupplyChainOptions(
    program
      .command('referrers')
      .argument('<ref>', 'artifact, by tag or digest')
      .description('list what is attached to an artifact: signatures, attestations, provenance, SBOMs')
      .option('--artifact-type <type>', 'only referrers of this artifact type (e.g. application/vnd.dev.sigstore.bundle.v0.3+json)')
      .option('--json', 'print the list as JSON')
      .addHelpText('after', '\nReads the referrers API, the sha256-<hex> fallback tag and cosign\'s .sig/.att tags.\n\nExample:\n  kit referrers registry.example.com/team/model:1.0 --remote'),
  ).action(async (ref: string, o: SupplyChainFlags & { artifactType?: string; json?: boolean }) => {
    const mode = supplyChainMode(o);
    const [{ openSubject }, { listAttached }] = await Promise.all([import('../../sign/open.js'), import('../../sign/referrers.js')]);
    const subject = await openSubject(ref, mode, supplyChainSettings(o));
    const r = await listAttached(subject.site, subject.ref, o.artifactType !== undefined ? { artifactType: o.artifactType } : {});
    if (o.json) return printJson(r);
    if (r.referrers.length === 0) return printLine(`Nothing is attached to ${ref} (${r.digest})`);
    printLine(
      renderTable(
        ['DIGEST', 'KIND', 'TYPE', 'CREATED'],
        r.referrers.map((x) => [x.digest, x.kind, x.tag ?? x.predicateType ?? x.artifactType ?? x.mediaType, x.created ?? '']),
      ),
    );
  });
}
