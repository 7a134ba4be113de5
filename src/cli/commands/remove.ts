import type { Command } from 'commander';
import { KitError, ExitCode } from '../../errors.js';
import { formatBytes, printJson, printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';

export function registerRemove(program: Command): void {
  addRemoteOptions(
    program
      .command('remove')
      .alias('rm')
      .argument('[ref]', 'reference or digest to remove')
      .description('untag an artifact; it is deleted, with blobs nothing else uses, when its last tag goes')
      .option('-a, --all', 'with a reference: every tag of that artifact; without: every artifact')
      .option('--force', 'remove an artifact named by digest even when tags point to it')
      .option('-r, --remote', 'delete the manifest from its registry instead')
      .option('--json', 'print the result as JSON')
      .addHelpText('after', '\nExamples:\n  kit remove registry.example.com/team/model:1.0\n  kit remove --all\n  kit remove --remote registry.example.com/team/model:old'),
  ).action(async (ref: string | undefined, o: RemoteFlags & { all?: boolean; force?: boolean; json?: boolean; remote?: boolean }) => {
    if (o.remote) {
      if (!ref) throw new KitError('REF_REQUIRED', '--remote needs a reference', { exitCode: ExitCode.usage });
      const { removeRemote } = await import('../../transfer/remote-ops.js');
      const r = await removeRemote(ref, remoteSettings(o));
      if (o.json) return printJson(r);
      return printLine(`Deleted ${r.reference} (${r.digest}) from the registry`);
    }
    const [{ removeArtifacts }, { LocalStore }] = await Promise.all([import('../../artifact/local.js'), import('../../store/local-store.js')]);
    const r = await removeArtifacts(await LocalStore.open(), { ...(ref !== undefined ? { ref } : {}), all: o.all === true, force: o.force === true });
    if (o.json) return printJson(r);
    for (const t of r.untagged) printLine(`Removed ${t}`);
    printLine(`Freed ${formatBytes(r.freedBytes)} (${r.removedBlobs} blobs)`);
  });
}
