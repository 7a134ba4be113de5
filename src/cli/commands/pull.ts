import type { Command } from 'commander';
import { repeat } from '../options.js';
import { formatBytes, printJson, printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';
import { createTransferProgress } from '../transfer-progress.js';

export function registerPull(program: Command): void {
  addRemoteOptions(
    program
      .command('pull')
      .argument('<ref>', 'artifact to download, by tag or digest')
      .description('download an artifact into the local store, resuming interrupted downloads')
      .option('--json', 'print a JSON summary')
      .option('--no-referrers', 'do not pull the signatures, attestations and SBOMs attached to the artifact')
      .option('--verify-key <file>', 'refuse the artifact, before writing anything, unless it carries a valid signature for this public key (cosign.pub); repeatable', repeat)
      .option('--parallel-ranges', 'fetch blobs of 64 MiB or more in 4 MiB ranges over four connections (for object storage, CDNs, long round trips)')
      .addHelpText('after', '\nExample:\n  kit pull registry.example.com/team/model:1.0'),
    { transfer: true },
  ).action(async (ref: string, o: RemoteFlags & { json?: boolean; referrers?: boolean; verifyKey?: string[]; parallelRanges?: boolean }) => {
    const [{ pullArtifact }, { LocalStore }] = await Promise.all([import('../../transfer/remote-ops.js'), import('../../store/local-store.js')]);
    const progress = createTransferProgress('Pulling', o.json ? 'none' : o.progress);
    try {
      const r = await pullArtifact(await LocalStore.open(), ref, { settings: remoteSettings(o), ...(o.concurrency ? { concurrency: o.concurrency } : {}), onEvent: progress.onEvent, referrers: o.referrers !== false, ...(o.parallelRanges ? { parallelRanges: true } : {}), ...(o.verifyKey ? { verify: await (await import('../../sign/verify.js')).signatureGate(o.verifyKey, ref) } : {}) });
      progress.stop();
      if (o.json) return printJson(r);
      printLine(`Pulled ${r.source}`);
      printLine(`Digest: ${r.digest} (${r.copied} blobs downloaded, ${formatBytes(r.bytes)}; ${r.skipped} already here)`);
      for (const p of r.parents ?? []) {
        printLine(`Built on ${p.reference}${p.reference.endsWith(p.digest) ? '' : ` (${p.digest})`}: ${p.kept === 'metadata' ? 'its manifest and config are kept with it' : 'pulled too (a ModelKit that holds none of its parent\'s layers needs it)'}`);
      }
    } finally {
      progress.stop();
    }
  });
}
