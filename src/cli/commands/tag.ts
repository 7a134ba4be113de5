import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';

export function registerTag(program: Command): void {
  program
    .command('tag')
    .argument('<source>', 'existing reference or digest')
    .argument('<target>', 'new reference')
    .description('give a local artifact another reference')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  kit tag team/model:1.0 registry.example.com/team/model:stable')
    .action(async (src: string, dst: string, o: { json?: boolean }) => {
      const [{ tagArtifact }, { LocalStore }] = await Promise.all([import('../../artifact/local.js'), import('../../store/local-store.js')]);
      const r = await tagArtifact(await LocalStore.open(), src, dst);
      if (o.json) return printJson(r);
      printLine(`Tagged ${r.target} (${r.digest})`);
    });
}
