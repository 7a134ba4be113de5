/**
 * Machine-level set-ups for the local-resource tests: a small tmpfs to fill up (root only), and
 * an unprivileged user to run kit as (root ignores file permissions, so permission tests run
 * kit as `nobody` when the suite runs as root).
 */
import { spawnSync } from 'node:child_process';
import { chown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const isRoot = process.getuid?.() === 0;

/** Prints a banner nobody can miss, as the registry harness does for skipped suites. */
export function loudSkip(why: string): string {
  process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING: ${why}\n${'!'.repeat(78)}\n\n`);
  return why;
}

/** The user kit runs as in permission tests: `nobody` when root, else ourselves. */
export function unprivileged(): { uid?: number; gid?: number; name: string } {
  if (!isRoot) return { name: 'the current user' };
  return { uid: 65534, gid: 65534, name: 'nobody (uid 65534)' };
}

/** chown -R, when running as root for another user; a no-op otherwise. */
export async function giveTo(path: string, user: { uid?: number; gid?: number }): Promise<void> {
  if (user.uid === undefined) return;
  const st = await lstat(path);
  await chown(path, user.uid, user.gid ?? user.uid);
  if (st.isDirectory()) for (const name of await readdir(path)) await giveTo(join(path, name), user);
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim() };
}

/** Why a tmpfs cannot be mounted here, or undefined when it can (tried for real). */
export function tmpfsSkipReason(probeDir: string): string | undefined {
  if (!isRoot) return 'disk-full tests need root to mount a small tmpfs (run the suite as root to include them)';
  const m = run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probeDir]);
  if (!m.ok) return `cannot mount a tmpfs (${m.out || 'mount failed'}): disk-full tests need CAP_SYS_ADMIN`;
  run('umount', [probeDir]);
  return undefined;
}

export interface Tmpfs {
  dir: string;
  resize(bytes: number): void;
  unmount(): void;
}

/** Mounts a tmpfs of `bytes` at `dir` (which must exist). */
export function mountTmpfs(dir: string, bytes: number, mode = '0777'): Tmpfs {
  const m = run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=${mode}`, 'tmpfs', dir]);
  if (!m.ok) throw new Error(`mount tmpfs at ${dir}: ${m.out}`);
  let mounted = true;
  return {
    dir,
    resize(size: number) {
      const r = run('mount', ['-o', `remount,size=${size}`, dir]);
      if (!r.ok) throw new Error(`remount ${dir}: ${r.out}`);
    },
    unmount() {
      if (!mounted) return;
      const r = run('umount', [dir]);
      if (!r.ok) run('umount', ['-l', dir]);
      mounted = false;
    },
  };
}
