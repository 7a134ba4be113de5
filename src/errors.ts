/**
 * The one error type that reaches the user. `message` names what is wrong (with the file,
 * reference or registry it concerns); `hint` says what to do. The CLI prints
 * `kit: <message>` and, when present, `hint: <hint>`, and exits with `exitCode`.
 */
export class KitError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly code: string;

  constructor(
    code: string,
    message: string,
    opts: { hint?: string; exitCode?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KitError';
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** Exit codes, stable for scripts: 1 generic failure, 2 usage, 3 not found, 4 conflict. */
export const ExitCode = {
  failure: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  /** A bug in kit (EX_SOFTWARE). */
  internal: 70,
} as const;

export function isKitError(err: unknown): err is KitError {
  return err instanceof KitError;
}

const FINAL_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE']);

/** Local conditions no retry changes (a full disk, a read-only store, no permission, no file descriptors left). */
export function isFinalLocalError(err: unknown): boolean {
  return FINAL_ERRNO.has(errnoCode(err) ?? '');
}

/** Node's errno-style error, narrowed. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}
