import type { Command } from 'commander';
import { formatBytes, printJson, printLine } from '../output.js';

export function registerRemove(program: Command): void {
  program
    .command('remove')
    .alias('rm')
    .argument('[ref]', 'reference or digest to remove')
    .description('untag an artifact; it is deleted, with blobs nothing else uses, when its last tag goes')
    .option('-a, --all', 'with a reference: every tag of that artifact; without: every artifact')
    .option('--force', 'remove an artifact named by digest even when tags point to it')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  kit remove registry.example.com/team/model:1.0\n  kit remove --all')
    .action(async (ref: string | undefined, o: { all?: boolean; force?: boolean; json?: boolean }) => {
      const [{ removeArtifacts }, { LocalStore }] = await Promise.all([import('../../artifact/local.js'), import('../../store/local-store.js')]);
      const r = await removeArtifacts(await LocalStore.open(), { ...(ref !== undefined ? { ref } : {}), all: o.all === true, force: o.force === true });
      if (o.json) return printJson(r);
      for (const t of r.untagged) printLine(`Removed ${t}`);
      printLine(`Freed ${formatBytes(r.freedBytes)} (${r.removedBlobs} blobs)`);
    });
}
