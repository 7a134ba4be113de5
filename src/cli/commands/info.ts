import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .argument('<ref>', 'artifact reference or digest')
    .description("print an artifact's Kitfile (YAML), or one field of it")
    .option('--filter <path>', 'print only this field, e.g. .model.name or .datasets[0].path')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  kit info registry.example.com/team/model:1.0 --filter .model.name')
    .action(async (ref: string, o: { filter?: string; json?: boolean }) => {
      const [{ loadArtifact }, { storeRef }, { LocalStore }, { selectPath, renderValue }] = await Promise.all([
        import('../../artifact/read.js'),
        import('../../artifact/local.js'),
        import('../../store/local-store.js'),
        import('../../artifact/info.js'),
      ]);
      const a = await loadArtifact(await LocalStore.open(), storeRef(ref));
      if (o.filter === undefined) {
        if (o.json) return printJson(a.kitfile);
        return printLine(a.kitfileText.trimEnd());
      }
      const v = selectPath(a.kitfile, o.filter);
      if (o.json) return printJson(v ?? null);
      printLine(renderValue(v));
    });
}
