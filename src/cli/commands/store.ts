import { InvalidArgumentError, Option, type Command } from 'commander';
import { ExitCode, KitError } from '../../errors.js';
import { formatBytes, printJson, printLine } from '../output.js';

/** `30s`, `10m`, `2h`, `1d`, or a number of seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 30s, 10m, 2h or 1d');
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * unit * 1000);
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s % 3600 === 0 && s > 0) return `${s / 3600}h`;
  if (s % 60 === 0 && s > 0) return `${s / 60}m`;
  return `${s}s`;
}

export function registerStore(program: Command): void {
  const store = program
    .command('store')
    .description('check and clean the local store')
    // Usage errors as exceptions, so that main() exits with 2 (set before the subcommands, which inherit it).
    .exitOverride()
    .addHelpText('after', '\nExamples:\n  kit store verify\n  kit store gc\n  kit store gc --now --json');

  store
    .command('verify')
    .description('re-hash every blob and check that every tag resolves fully; list what interrupted commands left')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nExit code 0 when nothing is damaged. Leftovers of interrupted commands (temp files, partial\ndownloads, which the next pull resumes) are listed but are not damage.',
    )
    .action(async (o: { json?: boolean }) => {
      const { LocalStore } = await import('../../store/local-store.js');
      const s = await LocalStore.open();
      const r = await s.verify();
      const damage = r.problems.filter((p) => p.kind !== 'ingest-leftover');
      if (o.json) {
        printJson({
          store: s.root,
          clean: r.clean,
          blobs: r.blobs,
          bytes: r.bytes,
          tags: r.tags,
          entries: r.entries,
          unreferenced: r.unreferenced,
          borrowed: r.borrowed,
          problems: damage,
          leftovers: r.leftovers,
        });
      } else {
        printLine(`Store ${s.root}: ${r.blobs} blobs (${formatBytes(r.bytes)}) re-hashed, ${r.entries} index entries (${r.tags} tags) checked`);
        for (const p of damage) printLine(`PROBLEM ${p.kind}: ${p.message}`);
        for (const l of r.leftovers) printLine(`leftover ${l.path} (${formatBytes(l.bytes)}): ${l.message}`);
        if (r.borrowed.blobs > 0) {
          printLine(`${r.borrowed.blobs} layers (${formatBytes(r.borrowed.bytes)}) of artifacts built on other artifacts are not here: they are the parents' and stay in their registries (push and unpack read them there)`);
        }
        if (r.unreferenced.blobs > 0) {
          printLine(`${r.unreferenced.blobs} blobs (${formatBytes(r.unreferenced.bytes)}) are not referenced by any tag; \`kit store gc\` removes them`);
        }
        if (r.clean) printLine(r.leftovers.length > 0 ? 'No damage (only leftovers of interrupted or running commands)' : 'No damage');
      }
      if (!r.clean) {
        const first = damage[0]!;
        throw new KitError('STORE_DAMAGED', `the local store ${s.root} is damaged: ${damage.length} problem${damage.length === 1 ? '' : 's'}, first: ${first.message}`, {
          hint:
            first.kind === 'bad-index'
              ? 'restore index.json from a backup or fix it by hand (blobs are untouched)'
              : 'delete the damaged blob files named above, then pull or pack the artifacts that use them again',
        });
      }
    });

  store
    .command('gc')
    .description('remove blobs no tag uses and files left by interrupted commands')
    .addOption(new Option('--grace <duration>', 'keep unreferenced blobs and ingest files younger than this (30s, 10m, 2h)').argParser(parseDuration).default(10 * 60 * 1000, '10m'))
    .option('--now', 'no grace period: remove them whatever their age (only when no other kit command is running)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      [
        '',
        'A pack or pull writes its blobs first and tags the artifact last: for a moment its blobs are',
        'referenced by nothing. So that a gc running at that moment does not remove them, unreferenced',
        'blobs and ingest files younger than the grace period (default 10m) are kept; a blob a running',
        'command reuses is freshened. Files whose process is still running are always kept, and temp',
        'files of processes that are gone always go. Partial downloads (resumed by the next pull) go',
        'once older than the grace period.',
      ].join('\n'),
    )
    .action(async (o: { grace: number; now?: boolean; json?: boolean }) => {
      if (!Number.isFinite(o.grace) || o.grace < 0) throw new KitError('GRACE_INVALID', 'the grace period must be a positive duration', { exitCode: ExitCode.usage });
      const { LocalStore } = await import('../../store/local-store.js');
      const s = await LocalStore.open();
      const r = await s.collectGarbage({ graceMs: o.grace, now: o.now === true });
      if (o.json) {
        return printJson({ store: s.root, graceSeconds: o.now ? 0 : Math.round(o.grace / 1000), blobs: r.blobs, ingest: r.ingest });
      }
      printLine(`Removed ${r.blobs.removed.length} unreferenced blobs (${formatBytes(r.blobs.bytes)})`);
      printLine(`Removed ${r.ingest.removed.length} ingest files (${formatBytes(r.ingest.bytes)}) left by interrupted commands`);
      if (r.blobs.keptYoung > 0) {
        printLine(`Kept ${r.blobs.keptYoung} unreferenced blobs (${formatBytes(r.blobs.keptYoungBytes)}) younger than ${formatDuration(o.grace)}: a running command may be about to tag them (--now removes them)`);
      }
      for (const k of r.ingest.kept) printLine(`Kept ${k.path}: ${k.reason}`);
    });
}
