/**
 * The cases of issue 4, each run `reps` times with kit and its baseline alternating (kit first
 * on even repetitions, the baseline first on odd ones), every timed run from a cold page cache:
 *
 *   pack      kit pack (raw layers)           max(openssl dgst -sha256 over the same files, cp -r + sync)
 *   push      kit push to a fresh registry    skopeo copy oci:$KIT_HOME/store:REF docker://... (fresh registry too)
 *   pull      kit pull into a fresh KIT_HOME  skopeo copy docker://... oci:DIR; for reference, the bare
 *                                             transfer: curl of every blob to files + sync, and to /dev/null
 *   unpack    kit unpack of the pulled store  cp -r of the project
 *   repush    kit push again, nothing changed (first push: the push case)
 *   shard     kit pack + push after one shard changed: blob bytes uploaded vs the shard's size
 *   startup   kit --version                   node -e 0 (warm page cache, after one warm-up run)
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseReference } from '../../src/oci/reference.js';
import { KIT_BIN } from '../helpers/cli.js';
import type { Project } from './project.js';
import { startBenchRegistry, type BenchRegistry } from './registry.js';
import { sampleOf, timed, type Sample, type Timed } from './timer.js';

export type CaseId = 'pack' | 'push' | 'pull' | 'unpack' | 'repush' | 'shard' | 'startup';

export interface CaseResult {
  id: CaseId;
  /** The timed kit process of each repetition. */
  kit: Sample[];
  /** Baseline processes by name, one sample per repetition. */
  baselines: Record<string, Sample[]>;
  /** Other per-repetition figures: bytes uploaded, registry CPU seconds, ... */
  metrics: Record<string, number[]>;
  /** kit processes of the case that are not the timed one (the re-pack before a shard push). */
  kitOther: Sample[];
}

export interface BenchContext {
  work: string;
  project: Project;
  reps: number;
  /** Startup repetitions (cheap and noisy: more of them). */
  startupReps: number;
  log(msg: string): void;
}

/** The tag kit packs the project under; pushes name their destination explicitly. */
const SOURCE_REF = 'bench.local/bench/model:1';

interface PushSummary {
  copied: number;
  skipped: number;
  mounted: number;
  bytes: number;
}

function kitEnv(home: string): NodeJS.ProcessEnv {
  return { ...process.env, KIT_HOME: home, KIT_CONFIG_HOME: join(home, 'config'), DOCKER_CONFIG: join(home, 'docker'), NO_COLOR: '1', CI: '1' };
}

async function kit(args: string[], home: string, cold = true): Promise<Timed & { json: unknown }> {
  const t = await timed(process.execPath, [KIT_BIN, ...args], { env: kitEnv(home), cold });
  let json: unknown;
  try {
    json = args.includes('--json') ? JSON.parse(t.stdout) : undefined;
  } catch {
    throw new Error(`kit ${args.join(' ')} printed no JSON:\n${t.stdout.slice(0, 2000)}`);
  }
  return { ...t, json };
}

const skopeo = (args: string[]): Promise<Timed> => timed('skopeo', ['copy', '--quiet', ...args], { cold: true });

/** Runs a then b on even repetitions, b then a on odd ones. */
async function alternate(rep: number, a: () => Promise<void>, b: () => Promise<void>): Promise<void> {
  if (rep % 2 === 0) {
    await a();
    await b();
  } else {
    await b();
    await a();
  }
}

/** Runs the steps in turn, each repetition starting one further along, so that none always goes first. */
async function inTurn(rep: number, ...steps: Array<() => Promise<void>>): Promise<void> {
  for (let i = 0; i < steps.length; i++) await steps[(rep + i) % steps.length]!();
}

function emptyCase(id: CaseId, baselines: string[]): CaseResult {
  return { id, kit: [], baselines: Object.fromEntries(baselines.map((b) => [b, []])), metrics: {}, kitOther: [] };
}

function metric(c: CaseResult, name: string, value: number): void {
  (c.metrics[name] ??= []).push(value);
}

const secs = (s: Sample): string => `${s.wall.toFixed(2)} s`;

async function treeStats(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += (await stat(join(e.parentPath, e.name))).size;
  }
  return { files, bytes };
}

/** Runs every case; registries are stopped and working folders removed whatever happens. */
export async function runCases(ctx: BenchContext): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const { work } = ctx;
  const sourceHome = join(work, 'home-packed');

  results.push(await packCase(ctx, sourceHome));
  results.push(await pushCase(ctx, sourceHome));

  const reg = await startBenchRegistry();
  try {
    const ref = `${reg.host}/bench/model:1`;
    ctx.log(`populating ${ref} for the pull, unpack and re-push cases`);
    await kit(['push', SOURCE_REF, ref, '--json'], sourceHome, false);
    const pulledHome = join(work, 'home-pulled');
    results.push(await pullCase(ctx, reg, ref, pulledHome));
    results.push(await unpackCase(ctx, ref, pulledHome));
    results.push(await repushCase(ctx, reg, ref, sourceHome));
    results.push(await shardCase(ctx, reg, sourceHome));
  } finally {
    await reg.stop();
  }
  results.push(await startupCase(ctx));
  return results;
}

async function packCase(ctx: BenchContext, sourceHome: string): Promise<CaseResult> {
  const c = emptyCase('pack', ['openssl', 'cp+sync']);
  const { project, work } = ctx;
  const files = project.files.map((f) => join(project.dir, f));
  for (let rep = 0; rep < ctx.reps; rep++) {
    let line = `pack ${rep + 1}/${ctx.reps}:`;
    await alternate(
      rep,
      async () => {
        await rm(sourceHome, { recursive: true, force: true });
        const t = await kit(['pack', project.dir, '-t', SOURCE_REF, '--json'], sourceHome);
        c.kit.push(sampleOf(t));
        line += ` kit ${secs(t)}`;
      },
      async () => {
        const h = await timed('openssl', ['dgst', '-sha256', ...files], { cold: true });
        c.baselines.openssl!.push(sampleOf(h));
        const dest = join(work, 'cp-pack');
        const cp = await timed('sh', ['-c', 'cp -r "$1" "$2" && sync', 'sh', project.dir, dest], { cold: true });
        c.baselines['cp+sync']!.push(sampleOf(cp));
        await rm(dest, { recursive: true, force: true });
        line += ` openssl ${secs(h)} cp+sync ${secs(cp)}`;
      },
    );
    ctx.log(line);
  }
  return c;
}

async function pushCase(ctx: BenchContext, sourceHome: string): Promise<CaseResult> {
  const c = emptyCase('push', ['skopeo']);
  // Each push goes to a registry of its own: nothing is there, nothing can be skipped or mounted.
  const withRegistry = async (fn: (reg: BenchRegistry) => Promise<void>): Promise<void> => {
    const reg = await startBenchRegistry();
    try {
      await fn(reg);
    } finally {
      await reg.stop();
    }
  };
  for (let rep = 0; rep < ctx.reps; rep++) {
    let line = `push ${rep + 1}/${ctx.reps}:`;
    await alternate(
      rep,
      () =>
        withRegistry(async (reg) => {
          const cpu0 = reg.cpuSeconds();
          const t = await kit(['push', SOURCE_REF, `${reg.host}/bench/model:1`, '--json'], sourceHome);
          c.kit.push(sampleOf(t));
          metric(c, 'kitRegistryCpu', reg.cpuSeconds() - cpu0);
          metric(c, 'kitBytes', (t.json as PushSummary).bytes);
          line += ` kit ${secs(t)}`;
        }),
      () =>
        withRegistry(async (reg) => {
          const cpu0 = reg.cpuSeconds();
          const t = await skopeo(['--dest-tls-verify=false', `oci:${join(sourceHome, 'store')}:${SOURCE_REF}`, `docker://${reg.host}/bench/model:1`]);
          c.baselines.skopeo!.push(sampleOf(t));
          metric(c, 'skopeoRegistryCpu', reg.cpuSeconds() - cpu0);
          line += ` skopeo ${secs(t)}`;
        }),
    );
    ctx.log(line);
  }
  return c;
}

async function pullCase(ctx: BenchContext, reg: BenchRegistry, ref: string, pulledHome: string): Promise<CaseResult> {
  const c = emptyCase('pull', ['skopeo', 'curl to files + sync', 'curl to /dev/null']);
  const layout = join(ctx.work, 'skopeo-pulled');
  const bare = join(ctx.work, 'curl-pulled');
  const blobs = await blobsOf(ref);
  for (let rep = 0; rep < ctx.reps; rep++) {
    let line = `pull ${rep + 1}/${ctx.reps}:`;
    const curl = async (name: string, into: string | undefined, cpuKey: string): Promise<void> => {
      if (into) await mkdir(into, { recursive: true });
      const cpu0 = reg.cpuSeconds();
      const t = await bareTransfer(blobs, into);
      c.baselines[name]!.push(sampleOf(t));
      metric(c, cpuKey, reg.cpuSeconds() - cpu0);
      if (into) await rm(into, { recursive: true, force: true });
      line += ` ${name} ${secs(t)}`;
    };
    await inTurn(
      rep,
      async () => {
        await rm(pulledHome, { recursive: true, force: true });
        const cpu0 = reg.cpuSeconds();
        const t = await kit(['pull', ref, '--json'], pulledHome);
        c.kit.push(sampleOf(t));
        metric(c, 'kitRegistryCpu', reg.cpuSeconds() - cpu0);
        metric(c, 'kitBytes', (t.json as PushSummary).bytes);
        line += ` kit ${secs(t)}`;
      },
      async () => {
        await rm(layout, { recursive: true, force: true });
        const cpu0 = reg.cpuSeconds();
        const t = await skopeo(['--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:bench`]);
        c.baselines.skopeo!.push(sampleOf(t));
        metric(c, 'skopeoRegistryCpu', reg.cpuSeconds() - cpu0);
        await rm(layout, { recursive: true, force: true });
        line += ` skopeo ${secs(t)}`;
      },
      () => curl('curl to files + sync', bare, 'curlFilesRegistryCpu'),
      () => curl('curl to /dev/null', undefined, 'curlNullRegistryCpu'),
    );
    ctx.log(line);
  }
  return c;
}

/** The blobs of `ref` (config and layers), largest first: the order kit transfers them in. */
async function blobsOf(ref: string): Promise<Array<{ url: string; name: string }>> {
  const { registry: host, repository: repo, tag } = parseReference(ref);
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (!res.ok) throw new Error(`GET manifest of ${ref}: HTTP ${res.status}`);
  const manifest = (await res.json()) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
  return [manifest.config, ...manifest.layers]
    .sort((a, b) => b.size - a.size)
    .map((d) => ({ url: `http://${host}/v2/${repo}/blobs/${d.digest}`, name: d.digest.replace(':', '-') }));
}

/**
 * The pull's bare transfer, for reference: every blob fetched by one curl, as many at a time as
 * kit (4) and in kit's order, nothing hashed or verified. Into files and then `sync` (kit's pull
 * is durable when it returns: every blob is fsynced): the registry and the disk with no client
 * work to do, where the machine's limit lies. To /dev/null: the registry alone.
 */
function bareTransfer(blobs: Array<{ url: string; name: string }>, into: string | undefined): Promise<Timed> {
  const args = ['-sSf', '--parallel', '--parallel-max', '4', ...blobs.flatMap((b) => ['-o', into ? join(into, b.name) : '/dev/null', b.url])];
  return into ? timed('sh', ['-c', 'curl "$@" && sync', 'sh', ...args], { cold: true }) : timed('curl', args, { cold: true });
}

async function unpackCase(ctx: BenchContext, ref: string, pulledHome: string): Promise<CaseResult> {
  const c = emptyCase('unpack', ['cp -r']);
  const { project, work } = ctx;
  const expected = await treeStats(project.dir);
  for (let rep = 0; rep < ctx.reps; rep++) {
    let line = `unpack ${rep + 1}/${ctx.reps}:`;
    await alternate(
      rep,
      async () => {
        const dest = join(work, 'unpacked');
        await rm(dest, { recursive: true, force: true });
        await mkdir(dest);
        const t = await kit(['unpack', ref, '-d', dest, '--local', '--json'], pulledHome);
        c.kit.push(sampleOf(t));
        const got = await treeStats(dest);
        if (got.files !== expected.files || got.bytes !== expected.bytes) {
          throw new Error(`kit unpack restored ${got.files} files / ${got.bytes} bytes, the project has ${expected.files} / ${expected.bytes}`);
        }
        await rm(dest, { recursive: true, force: true });
        line += ` kit ${secs(t)}`;
      },
      async () => {
        const dest = join(work, 'cp-unpack');
        await rm(dest, { recursive: true, force: true });
        const t = await timed('cp', ['-r', project.dir, dest], { cold: true });
        c.baselines['cp -r']!.push(sampleOf(t));
        await rm(dest, { recursive: true, force: true });
        line += ` cp -r ${secs(t)}`;
      },
    );
    ctx.log(line);
  }
  return c;
}

async function repushCase(ctx: BenchContext, reg: BenchRegistry, ref: string, sourceHome: string): Promise<CaseResult> {
  const c = emptyCase('repush', []);
  for (let rep = 0; rep < ctx.reps; rep++) {
    const cpu0 = reg.cpuSeconds();
    const t = await kit(['push', SOURCE_REF, ref, '--json'], sourceHome);
    c.kit.push(sampleOf(t));
    metric(c, 'bytes', (t.json as PushSummary).bytes);
    metric(c, 'copied', (t.json as PushSummary).copied);
    metric(c, 'kitRegistryCpu', reg.cpuSeconds() - cpu0);
    ctx.log(`re-push ${rep + 1}/${ctx.reps}: kit ${secs(t)}, ${(t.json as PushSummary).bytes} bytes uploaded`);
  }
  return c;
}

async function shardCase(ctx: BenchContext, reg: BenchRegistry, sourceHome: string): Promise<CaseResult> {
  const c = emptyCase('shard', []);
  const { project } = ctx;
  for (let rep = 0; rep < ctx.reps; rep++) {
    await project.changeShard(1, `changed-${rep}`);
    const tag = `bench.local/bench/model:shard-${rep}`;
    const packed = await kit(['pack', project.dir, '-t', tag, '--json'], sourceHome);
    c.kitOther.push(sampleOf(packed));
    const t = await kit(['push', tag, `${reg.host}/bench/model:shard-${rep}`, '--json'], sourceHome);
    c.kit.push(sampleOf(t));
    const s = t.json as PushSummary;
    metric(c, 'bytes', s.bytes);
    metric(c, 'copied', s.copied);
    metric(c, 'shardBytes', project.shardBytes);
    ctx.log(`changed shard ${rep + 1}/${ctx.reps}: re-pack ${secs(packed)}, push ${secs(t)}, ${s.bytes} bytes in ${s.copied} blobs (shard ${project.shardBytes})`);
  }
  return c;
}

async function startupCase(ctx: BenchContext): Promise<CaseResult> {
  const c = emptyCase('startup', ['node -e 0']);
  const home = join(ctx.work, 'home-startup');
  spawnSync('sync'); // no write-back of the earlier cases running underneath
  await kit(['--version'], home, false); // warm-up: the page cache holds node and kit's modules
  await timed(process.execPath, ['-e', '0']);
  for (let rep = 0; rep < ctx.startupReps; rep++) {
    await alternate(
      rep,
      async () => {
        c.kit.push(sampleOf(await kit(['--version'], home, false)));
      },
      async () => {
        c.baselines['node -e 0']!.push(sampleOf(await timed(process.execPath, ['-e', '0'])));
      },
    );
  }
  ctx.log(`startup: ${ctx.startupReps} runs each`);
  return c;
}
