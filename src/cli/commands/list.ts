import type { Command } from 'commander';
import { KitError, ExitCode } from '../../errors.js';
import { oneOf } from '../options.js';
import { formatBytes, printJson, printLine, renderTable } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';
import { shortDigest } from '../../oci/digest.js';

export function registerList(program: Command): void {
  addRemoteOptions(
    program
      .command('list')
      .alias('ls')
      .argument('[repository]', 'only artifacts of this repository')
      .description('list the artifacts in the local store, or the tags of a remote repository')
      .option('-r, --remote', 'list the tags of REPOSITORY in its registry')
      .option('--format <format>', 'table or json', oneOf(['table', 'json'] as const), 'table')
      .option('--json', 'same as --format json')
      .addHelpText('after', '\nExamples:\n  kit list registry.example.com/team/model\n  kit list --remote registry.example.com/team/model'),
  ).action(async (repo: string | undefined, o: RemoteFlags & { format: 'table' | 'json'; json?: boolean; remote?: boolean }) => {
    const json = o.json || o.format === 'json';
    if (o.remote) {
      if (!repo) throw new KitError('REPOSITORY_REQUIRED', '--remote needs a repository', { hint: 'e.g. kit list --remote registry.example.com/team/model', exitCode: ExitCode.usage });
      const { listRemote } = await import('../../transfer/remote-ops.js');
      const tags = await listRemote(repo, remoteSettings(o));
      if (json) return printJson(tags);
      return printLine(renderTable(['REFERENCE', 'DIGEST', 'TYPE'], tags.map((t) => [t.reference, shortDigest(t.digest), t.artifactType ?? t.mediaType])));
    }
    const [{ listArtifacts }, { LocalStore }] = await Promise.all([import('../../artifact/local.js'), import('../../store/local-store.js')]);
    const rows = await listArtifacts(await LocalStore.open(), repo);
    if (json) return printJson(rows);
    printLine(
      renderTable(
        ['REPOSITORY', 'TAG', 'MAINTAINER', 'NAME', 'SIZE', 'DIGEST'],
        rows.map((r) => [r.repository, r.tag, r.maintainer, r.name, formatBytes(r.size), shortDigest(r.digest)]),
      ),
    );
  });
}
