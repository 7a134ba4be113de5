import { execFile } from 'node:child_process';

/** The git checkout a project folder is in: its commit, origin and whether files were changed. */
export interface GitSource {
  commit: string;
  /** `remote.origin.url`, without any credentials it embeds. */
  remote?: string;
  /** HEAD's branch (refs/heads/...), when on one. */
  ref?: string;
  dirty: boolean;
}

/** undefined when `dir` is not in a git checkout, or git is not installed. */
export async function gitSource(dir: string): Promise<GitSource | undefined> {
  const commit = await git(dir, ['rev-parse', '--verify', 'HEAD']);
  if (commit === undefined || !/^[0-9a-f]{40,64}$/.test(commit)) return undefined;
  const [remote, ref, status] = await Promise.all([
    git(dir, ['config', '--get', 'remote.origin.url']),
    git(dir, ['symbolic-ref', '-q', 'HEAD']),
    git(dir, ['status', '--porcelain', '--untracked-files=no']),
  ]);
  const out: GitSource = { commit, dirty: status !== undefined && status !== '' };
  if (remote) out.remote = redactUrl(remote);
  if (ref) out.ref = ref;
  return out;
}

/** A remote URL as it may be published: userinfo (tokens put in https URLs) removed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '';
      u.password = '';
    }
    return u.toString();
  } catch {
    // scp-like `git@host:org/repo.git`: the user is not a secret
    return url;
  }
}

function git(cwd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', args, { cwd, timeout: 10_000, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' } }, (err, stdout) => {
      resolve(err ? undefined : stdout.trim());
    });
  });
}
