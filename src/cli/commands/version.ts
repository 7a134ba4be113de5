import type { Command } from 'commander';
import { KIT_VERSION } from '../../version.js';
import { printJson, printLine } from '../output.js';

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print version information')
    .option('--json', 'print as JSON')
    .action((o: { json?: boolean }) => {
      const info = { version: KIT_VERSION, node: process.versions.node, platform: `${process.platform}/${process.arch}` };
      if (o.json) return printJson(info);
      printLine(`kit ${info.version} (node ${info.node}, ${info.platform})`);
    });
}
