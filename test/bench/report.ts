/**
 * Medians, kit/baseline ratios and the targets of issue 4, as a Markdown table (stdout and
 * test/bench/RESULTS.md) and as JSON. Informational: a FAIL here is a finding, not an error.
 */
import type { CaseId, CaseResult } from './cases.js';
import type { Sample } from './timer.js';

export const RSS_LIMIT_KIB = 150 * 1024;

export interface Row {
  case: string;
  kit: string;
  baseline: string;
  /** kit/baseline, or the measured value when there is no baseline. */
  ratio: string;
  target: string;
  result: 'PASS' | 'FAIL';
  /** The compared figure and its limit, for the JSON. */
  value: number;
  limit: number;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const med = (samples: Sample[], key: keyof Sample): number => median(samples.map((s) => s[key]));

function seconds(s: number): string {
  if (Number.isNaN(s)) return '-';
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;
const rate = (total: number, s: number): string => `${(total / 2 ** 20 / s).toFixed(0)} MiB/s`;
const ratioText = (r: number): string => (Number.isNaN(r) ? '-' : `${r.toFixed(r < 0.1 ? 3 : 2)}x`);

function row(name: string, kit: string, baseline: string, value: number, limit: number, target: string, shown = ratioText(value)): Row {
  return { case: name, kit, baseline, ratio: shown, target, result: value <= limit ? 'PASS' : 'FAIL', value, limit };
}

/** The table rows, in the order; `total` is the project's size in bytes. */
export function buildRows(results: CaseResult[], total: number): Row[] {
  const get = (id: CaseId): CaseResult => {
    const c = results.find((r) => r.id === id);
    if (!c) throw new Error(`no results for case ${id}`);
    return c;
  };
  const rows: Row[] = [];
  const regCpu = (c: CaseResult, key: string): string => (c.metrics[key] ? `, registry cpu ${seconds(median(c.metrics[key]!))}` : '');
  const timing = (samples: Sample[], c?: CaseResult, key?: string): string =>
    `${seconds(med(samples, 'wall'))} (${rate(total, med(samples, 'wall'))}; cpu ${seconds(med(samples, 'cpu'))}${c && key ? regCpu(c, key) : ''})`;

  const pack = get('pack');
  const openssl = pack.baselines.openssl!;
  const cp = pack.baselines['cp+sync']!;
  const packBase = median(openssl.map((o, i) => Math.max(o.wall, cp[i]!.wall)));
  rows.push(
    row('kit pack (raw layers)', timing(pack.kit), `${seconds(packBase)} = max(openssl dgst ${seconds(med(openssl, 'wall'))}, cp + sync ${seconds(med(cp, 'wall'))})`, med(pack.kit, 'wall') / packBase, 1.25, 'wall <= 1.25x'),
  );

  const push = get('push');
  const skPush = push.baselines.skopeo!;
  rows.push(row('kit push (wall)', timing(push.kit, push, 'kitRegistryCpu'), `skopeo copy oci: -> docker: ${timing(skPush, push, 'skopeoRegistryCpu')}`, med(push.kit, 'wall') / med(skPush, 'wall'), 1.0, 'wall <= 1.0x'));
  rows.push(row('kit push (client cpu)', `${seconds(med(push.kit, 'cpu'))} (user ${seconds(med(push.kit, 'user'))}, sys ${seconds(med(push.kit, 'sys'))})`, `${seconds(med(skPush, 'cpu'))} (user ${seconds(med(skPush, 'user'))}, sys ${seconds(med(skPush, 'sys'))})`, med(push.kit, 'cpu') / med(skPush, 'cpu'), 0.5, 'cpu <= 0.5x'));

  const pull = get('pull');
  const skPull = pull.baselines.skopeo!;
  rows.push(row('kit pull', timing(pull.kit, pull, 'kitRegistryCpu'), `skopeo copy docker: -> oci: ${timing(skPull, pull, 'skopeoRegistryCpu')}`, med(pull.kit, 'wall') / med(skPull, 'wall'), 0.5, 'wall <= 0.5x'));
  // Not a target of the issue: where the machine's limit lies (see cases.ts, bareTransfer).
  const curlFiles = pull.baselines['curl to files + sync']!;
  const curlNull = pull.baselines['curl to /dev/null']!;
  rows.push(
    row(
      'kit pull vs. the bare transfer (reference)',
      `${seconds(med(pull.kit, 'wall'))} (verified, durable)`,
      `curl to files + sync ${timing(curlFiles, pull, 'curlFilesRegistryCpu')}; curl to /dev/null ${seconds(med(curlNull, 'wall'))} (registry cpu ${seconds(median(pull.metrics.curlNullRegistryCpu ?? []))})`,
      med(pull.kit, 'wall') / med(curlFiles, 'wall'),
      1.0,
      'wall <= 1.0x',
    ),
  );

  const unpack = get('unpack');
  const cpr = unpack.baselines['cp -r']!;
  rows.push(row('kit unpack', timing(unpack.kit), `cp -r ${timing(cpr)}`, med(unpack.kit, 'wall') / med(cpr, 'wall'), 1.3, 'wall <= 1.3x'));

  const repush = get('repush');
  rows.push(row('re-push, nothing changed', `${seconds(med(repush.kit, 'wall'))}`, `first push ${seconds(med(push.kit, 'wall'))}`, med(repush.kit, 'wall') / med(push.kit, 'wall'), 0.05, 'wall <= 0.05x'));
  const repushBytes = Math.max(...repush.metrics.bytes!);
  rows.push(row('re-push: blob bytes uploaded', `${bytes(repushBytes)} (max of ${repush.metrics.bytes!.length})`, '-', repushBytes, 0, '0 B', bytes(repushBytes)));

  const shard = get('shard');
  const shardBytes = shard.metrics.shardBytes![0]!;
  const up = median(shard.metrics.bytes!);
  rows.push(row('push after changing one shard: bytes uploaded', `${bytes(up)} in ${median(shard.metrics.copied!)} blobs (push ${seconds(med(shard.kit, 'wall'))}, re-pack ${seconds(med(shard.kitOther, 'wall'))})`, `shard ${bytes(shardBytes)}`, up / shardBytes, 1.01, 'bytes <= 1.01x', `${(up / shardBytes).toFixed(4)}x`));

  const rss: Array<[string, Sample[], Sample[]]> = [
    ['pack', pack.kit, [...openssl, ...cp]],
    ['push', push.kit, skPush],
    ['pull', pull.kit, skPull],
    ['unpack', unpack.kit, cpr],
    ['re-push', repush.kit, []],
    ['shard re-pack + push', [...shard.kit, ...shard.kitOther], []],
  ];
  for (const [name, kit, base] of rss) {
    const peak = Math.max(...kit.map((s) => s.rssKiB));
    const basePeak = base.length ? `${mib(Math.max(...base.map((s) => s.rssKiB)))} (baseline's peak)` : '-';
    rows.push(row(`peak RSS: kit ${name}`, mib(peak), basePeak, peak, RSS_LIMIT_KIB, '<= 150 MiB', mib(peak)));
  }

  const startup = get('startup');
  const node = startup.baselines['node -e 0']!;
  rows.push(row('kit --version', `${seconds(med(startup.kit, 'wall'))} (cpu ${seconds(med(startup.kit, 'cpu'))}, ${mib(Math.max(...startup.kit.map((s) => s.rssKiB)))})`, `node -e 0 ${seconds(med(node, 'wall'))} (cpu ${seconds(med(node, 'cpu'))})`, med(startup.kit, 'wall') / med(node, 'wall'), 3, 'wall <= 3x'));
  return rows;
}

/** A Markdown table with padded columns (readable as plain text too). */
export function markdownTable(rows: Row[]): string {
  const head = ['case', 'kit (median)', 'baseline (median)', 'kit/baseline', 'target', 'result'];
  const body = rows.map((r) => [r.case, r.kit, r.baseline, r.ratio, r.target, r.result]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
