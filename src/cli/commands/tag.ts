import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';

export function registerTag(program: Command): void {
  addRemoteOptions(
    program
      .command('tag')
      .argument('<source>', 'existing reference or digest')
      .argument('<target>', 'new reference')
      .description('give an artifact another reference, locally or (--remote) across registry repositories')
      .option('-r, --remote', 'tag in the registry: copy SOURCE to TARGET there, mounting blobs within one registry')
      .option('--json', 'print the result as JSON')
      .addHelpText('after', '\nExamples:\n  kit tag team/model:1.0 registry.example.com/team/model:stable\n  kit tag --remote registry.example.com/team/model:1.0 registry.example.com/prod/model:1.0'),
  ).action(async (src: string, dst: string, o: RemoteFlags & { json?: boolean; remote?: boolean }) => {
    if (o.remote) {
      const { tagRemote } = await import('../../transfer/remote-ops.js');
      const r = await tagRemote(src, dst, { settings: remoteSettings(o) });
      if (o.json) return printJson(r);
      return printLine(`Tagged ${r.destination} (${r.digest}; ${r.mounted} blobs mounted, ${r.copied} copied)`);
    }
    const [{ tagArtifact }, { LocalStore }] = await Promise.all([import('../../artifact/local.js'), import('../../store/local-store.js')]);
    const r = await tagArtifact(await LocalStore.open(), src, dst);
    if (o.json) return printJson(r);
    printLine(`Tagged ${r.target} (${r.digest})`);
  });
}
