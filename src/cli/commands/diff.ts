import type { Command } from 'commander';
import { formatBytes, printJson, printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';

export function registerDiff(program: Command): void {
  addRemoteOptions(
    program
      .command('diff')
      .argument('<a>', 'first artifact (local://REF, remote://REF, or REF: local store first, then registry)')
      .argument('<b>', 'second artifact')
      .description('compare two artifacts: shared layers, layers only in one, and what pulling B costs given A')
      .option('--json', 'print the comparison as JSON')
      .addHelpText('after', '\nExamples:\n  kit diff team/model:1.0 team/model:1.1\n  kit diff local://team/model:1.0 remote://registry.example.com/team/model:2.0'),
  ).action(async (a: string, b: string, o: RemoteFlags & { json?: boolean }) => {
    const { diffReferences } = await import('../../artifact/diff.js');
    const d = await diffReferences(a, b, remoteSettings(o));
    if (o.json) return printJson(d);
    printLine(`A: ${d.a.reference} ${d.a.digest} (${d.a.where})`);
    printLine(`B: ${d.b.reference} ${d.b.digest} (${d.b.where})`);
    if (d.identical) return printLine('The artifacts are identical.');
    printLine(`Config: ${d.sameConfig ? 'same' : 'different'}`);
    const show = (title: string, layers: typeof d.shared) => {
      printLine(`${title} (${layers.length}, ${formatBytes(layers.reduce((n, l) => n + l.size, 0))}):`);
      for (const l of layers) printLine(`  ${l.path}  ${formatBytes(l.size)}  ${l.digest.slice(7, 19)}`);
    };
    show('Shared layers', d.shared);
    show('Only in A', d.onlyInA);
    show('Only in B', d.onlyInB);
    printLine(`Pulling B with A at hand transfers ${formatBytes(d.transferBytesForB)} of ${formatBytes(d.totalBytesB)}.`);
  });
}
