import type { Command } from 'commander';
import { oneOf } from '../options.js';
import { formatBytes, printJson, printLine, renderTable } from '../output.js';
import { shortDigest } from '../../oci/digest.js';

export function registerList(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .argument('[repository]', 'only artifacts of this repository')
    .description('list the artifacts in the local store')
    .option('--format <format>', 'table or json', oneOf(['table', 'json'] as const), 'table')
    .option('--json', 'same as --format json')
    .addHelpText('after', '\nExample:\n  kit list registry.example.com/team/model')
    .action(async (repo: string | undefined, o: { format: 'table' | 'json'; json?: boolean }) => {
      const [{ listArtifacts }, { LocalStore }] = await Promise.all([import('../../artifact/local.js'), import('../../store/local-store.js')]);
      const rows = await listArtifacts(await LocalStore.open(), repo);
      if (o.json || o.format === 'json') return printJson(rows);
      printLine(
        renderTable(
          ['REPOSITORY', 'TAG', 'MAINTAINER', 'NAME', 'SIZE', 'DIGEST'],
          rows.map((r) => [r.repository, r.tag, r.maintainer, r.name, formatBytes(r.size), shortDigest(r.digest)]),
        ),
      );
    });
}
