import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .argument('[dir]', 'project folder', '.')
    .description('write a Kitfile by classifying the files in a project folder')
    .option('--name <name>', 'package name (default: the folder name)')
    .option('--desc <text>', 'package description')
    .option('--author <name>', 'package author')
    .option('--force', 'overwrite an existing Kitfile')
    .option('--json', 'print the generated Kitfile as JSON')
    .addHelpText('after', '\nExample:\n  kit init ./my-model --name sentiment --author "ML Team"')
    .action(async (dir: string, o: { name?: string; desc?: string; author?: string; force?: boolean; json?: boolean }) => {
      const { generateKitfile, writeKitfile } = await import('../../kitfile/init.js');
      const kitfile = await generateKitfile(dir, { name: o.name, description: o.desc, author: o.author });
      const path = await writeKitfile(dir, kitfile, { force: o.force === true });
      if (o.json) printJson({ path, kitfile });
      else printLine(`Wrote ${path}`);
    });
}
