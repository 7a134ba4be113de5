import type { Command } from 'commander';
import { printJson } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';

export function registerInspect(program: Command): void {
  addRemoteOptions(
    program
      .command('inspect')
      .argument('<ref>', 'artifact reference or digest')
      .description('print the digest, manifest and config of an artifact as JSON')
      .option('-r, --remote', 'read it from its registry instead of the local store')
      .addHelpText('after', '\nExamples:\n  kit inspect registry.example.com/team/model:1.0\n  kit inspect --remote registry.example.com/team/model:1.0'),
  ).action(async (ref: string, o: RemoteFlags & { remote?: boolean }) => {
    const [{ loadArtifact }, { openSource }] = await Promise.all([import('../../artifact/read.js'), import('../../artifact/source.js')]);
    const src = await openSource(ref, o.remote ? 'remote' : 'local', remoteSettings(o));
    const a = await loadArtifact(src.target, src.ref);
    printJson({ reference: ref, digest: a.descriptor.digest, format: a.format, manifest: a.manifest, config: a.config });
  });
}
