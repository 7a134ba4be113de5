import type { Command } from 'commander';
import { formatBytes, printJson, printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';
import { createTransferProgress } from '../transfer-progress.js';

export function registerPush(program: Command): void {
  addRemoteOptions(
    program
      .command('push')
      .argument('<ref>', 'local artifact to push')
      .argument('[destination]', 'where to push it (default: the same reference)')
      .description('upload a local artifact to its registry, skipping blobs the registry has')
      .option('--json', 'print a JSON summary')
      .option('--no-referrers', 'do not push the signatures, attestations and SBOMs attached to the artifact')
      .addHelpText('after', '\nExamples:\n  kit push registry.example.com/team/model:1.0\n  kit push team/model:1.0 localhost:5000/team/model:1.0 --plain-http'),
    { transfer: true },
  ).action(async (ref: string, dest: string | undefined, o: RemoteFlags & { json?: boolean; referrers?: boolean }) => {
    const [{ pushArtifact }, { LocalStore }] = await Promise.all([import('../../transfer/remote-ops.js'), import('../../store/local-store.js')]);
    const progress = createTransferProgress('Pushing', o.json ? 'none' : o.progress);
    try {
      const r = await pushArtifact(await LocalStore.open(), ref, dest, { settings: remoteSettings(o), ...(o.concurrency ? { concurrency: o.concurrency } : {}), onEvent: progress.onEvent, referrers: o.referrers !== false });
      progress.stop();
      if (o.json) return printJson(r);
      printLine(`Pushed ${r.destination}`);
      printLine(`Digest: ${r.digest} (${r.copied} blobs uploaded, ${formatBytes(r.bytes)}; ${r.skipped} already there; ${r.mounted} mounted)`);
    } finally {
      progress.stop();
    }
  });
}
