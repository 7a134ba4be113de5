import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';

export function registerInfo(program: Command): void {
  addRemoteOptions(
    program
      .command('info')
      .argument('<ref>', 'artifact reference or digest')
      .description("print an artifact's Kitfile (YAML), or one field of it")
      .option('--filter <path>', 'print only this field, e.g. .model.name or .datasets[0].path')
      .option('-r, --remote', 'read it from its registry instead of the local store')
      .option('--json', 'print as JSON')
      .addHelpText('after', '\nExample:\n  kit info registry.example.com/team/model:1.0 --filter .model.name'),
  ).action(async (ref: string, o: RemoteFlags & { filter?: string; json?: boolean; remote?: boolean }) => {
    const [{ loadArtifact }, { openSource }, { selectPath, renderValue }] = await Promise.all([
      import('../../artifact/read.js'),
      import('../../artifact/source.js'),
      import('../../artifact/info.js'),
    ]);
    const src = await openSource(ref, o.remote ? 'remote' : 'local', remoteSettings(o));
    const a = await loadArtifact(src.target, src.ref);
    if (o.filter === undefined) {
      if (o.json) return printJson(a.kitfile);
      return printLine(a.kitfileText.trimEnd());
    }
    const v = selectPath(a.kitfile, o.filter);
    if (o.json) return printJson(v ?? null);
    printLine(renderValue(v));
  });
}
