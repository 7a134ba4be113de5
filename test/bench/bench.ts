/**
 * `npm run bench [-- --size 2G|256M|64M] [--reps N] [--json FILE]`
 *
 * kit against its baselines on the same generated project, the same machine and the same real
 * registry (docker-registry on 127.0.0.1), in one run: see cases.ts for the cases and
 * report.ts for the targets. Prints a Markdown table of medians and kit/baseline ratios;
 * --json FILE also writes every sample. Asserts nothing: it exits 0 unless something crashed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runCases } from './cases.js';
import { describeMachine, ensureTools } from './env.js';
import { generateProject, SHARDS } from './project.js';
import { buildRows, bytes, markdownTable } from './report.js';
import { canDropCaches, reportsFreePages } from './timer.js';

const USAGE = 'usage: npm run bench [-- --size 2G|256M|64M] [--reps N] [--json FILE] [--workdir DIR]';

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new Error(`--size: expected a size such as 2G, 256M or 64M, got ${text}`);
  const power = ['', 'K', 'M', 'G', 'T'].indexOf(m[2]!.toUpperCase());
  const n = Math.round(Number(m[1]) * 1024 ** power);
  if (n < 8 * 2 ** 20) throw new Error('--size: at least 8M');
  return n;
}

function parseOptions(): { size: number; reps: number; json?: string; workdir?: string } {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '2G' },
      reps: { type: 'string', default: '3' },
      json: { type: 'string' },
      workdir: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps: expected a whole number >= 1');
  return { size: parseSize(values.size!), reps, ...(values.json ? { json: values.json } : {}), ...(values.workdir ? { workdir: values.workdir } : {}) };
}

const log = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

async function main(): Promise<void> {
  const opts = parseOptions();
  ensureTools(log);
  const machine = describeMachine();
  const work = await mkdtemp(join(opts.workdir ?? tmpdir(), 'kit-bench-'));
  const cleanup = (): void => rmSync(work, { recursive: true, force: true });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
  const started = Date.now();
  const loadBefore = loadavg()[0]!;
  try {
    log(`generating a ${bytes(opts.size)} project in ${work}`);
    const project = await generateProject(join(work, 'project'), opts.size);
    const cold = canDropCaches();
    const results = await runCases({ work, project, reps: opts.reps, startupReps: Math.max(5, opts.reps * 5), log });
    const rows = buildRows(results, project.bytes);
    const minutes = (Date.now() - started) / 60_000;

    const small = project.files.length - 1 - 1 - SHARDS;
    const header = [
      `kit benchmark, ${new Date().toISOString()}: ${bytes(project.bytes)} project (weight file ${bytes(Math.round(opts.size * 0.7))}, ${SHARDS} shards of ${bytes(project.shardBytes)}, ${small} small files, Kitfile), ${opts.reps} repetition(s), medians, run took ${minutes.toFixed(1)} min`,
      `machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB RAM, Linux ${machine.kernel}, node ${machine.node}, ${machine.skopeo}, ${machine.registry}, ${machine.openssl}, ${machine.curl}`,
      cold
        ? `page cache: dropped before every timed run (sync; echo 3 > /proc/sys/vm/drop_caches)${reportsFreePages() ? ', then a wait until the VM has handed the freed memory back to its host (free page reporting), so that every process starts with the same cold memory' : ''}; kit --version / node -e 0 run warm after a warm-up run`
        : 'page cache: NOT dropped (not root, or /proc/sys/vm/drop_caches not writable): runs after the first may read from memory',
      'registry: docker-registry on 127.0.0.1 (plain HTTP, filesystem storage on the same disk); each push goes to a fresh registry',
      `load average (1 min) at the start ${loadBefore.toFixed(2)}, at the end ${loadavg()[0]!.toFixed(2)}: anything else running skews the figures`,
    ];
    console.log(`${header.join('\n')}\n\n${markdownTable(rows)}\n`);
    const failed = rows.filter((r) => r.result === 'FAIL').map((r) => r.case);
    console.log(failed.length ? `targets not met (informational): ${failed.join('; ')}` : 'every target met');

    if (opts.json) {
      await writeFile(opts.json, `${JSON.stringify({ header, machine, size: project.bytes, reps: opts.reps, cachesDropped: cold, rows, cases: results }, null, 2)}\n`);
      log(`wrote ${opts.json}`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// `npm test` runs `node --test dist/test/`, whose default pattern (`**/test/**/*.js`) includes
// this file: under the test runner (NODE_TEST_CONTEXT is set) do nothing; the benchmark runs
// only through `npm run bench`.
if (process.env.NODE_TEST_CONTEXT === undefined) {
  main().catch((err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  });
}
