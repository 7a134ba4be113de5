/**
 * The tools the benchmark runs (/usr/bin/time, skopeo, docker-registry, openssl, curl), installed with
 * apt-get when missing and running as root (like the integration harness), and a description
 * of the machine for the report.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { TIME_BIN } from './timer.js';

/** Executable -> Debian package. */
const TOOLS: Record<string, string> = {
  [TIME_BIN]: 'time',
  skopeo: 'skopeo',
  'docker-registry': 'docker-registry',
  openssl: 'openssl',
  curl: 'curl',
};

function available(cmd: string): boolean {
  const candidates = cmd.startsWith('/') ? [cmd] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, cmd));
  return candidates.some((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function ensureTools(log: (msg: string) => void): void {
  const missing = Object.keys(TOOLS).filter((t) => !available(t));
  if (missing.length === 0) return;
  const packages = missing.map((t) => TOOLS[t]!);
  if (process.getuid?.() !== 0 || !available('apt-get')) {
    throw new Error(`missing ${missing.join(', ')}: install them (apt-get install ${packages.join(' ')}) or run the benchmark as root`);
  }
  log(`installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...packages]]) {
    const r = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10 * 60_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed: ${r.stderr?.toString().slice(-2000)}`);
  }
  const still = Object.keys(TOOLS).filter((t) => !available(t));
  if (still.length > 0) throw new Error(`still missing after apt-get: ${still.join(', ')}`);
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  skopeo: string;
  registry: string;
  openssl: string;
  curl: string;
  kernel: string;
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

export function describeMachine(): Machine {
  let kernel = '';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    skopeo: firstLine('skopeo', ['--version']),
    registry: firstLine('docker-registry', ['--version']),
    openssl: firstLine('openssl', ['version']),
    curl: firstLine('curl', ['--version']).split(' ').slice(0, 2).join(' '),
    kernel,
  };
}
