import { errnoCode, isKitError } from '../errors.js';

/** Known system errors, turned into a sentence and advice. */
const ERRNO_ADVICE: Record<string, [string, string]> = {
  ENOSPC: ['no space left on the device', 'free some space (kit store gc removes unused blobs) and run the command again'],
  EDQUOT: ['disk quota exceeded', 'free some space and run the command again'],
  EACCES: ['permission denied', 'check the permissions of the file or folder named above, or set KIT_HOME to a writable folder'],
  EPERM: ['operation not permitted', 'check the permissions of the file or folder named above'],
  EROFS: ['the file system is read-only', 'set KIT_HOME to a writable folder'],
  ENOENT: ['no such file or folder', 'check the path'],
  EMFILE: ['too many open files', 'raise the open-file limit (ulimit -n)'],
};

/** Print one clear line (and a hint) for any failure; the stack only when verbose. */
export function reportError(err: unknown, verbose: boolean): number {
  const write = (s: string) => process.stderr.write(`${s}\n`);
  if (isKitError(err)) {
    write(`kit: ${err.message}`);
    for (const line of problemLines(err)) write(`  ${line}`);
    if (err.hint) write(`hint: ${err.hint}`);
    if (verbose && err.stack) write(err.stack);
    return err.exitCode;
  }
  const code = errnoCode(err);
  const advice = code ? ERRNO_ADVICE[code] : undefined;
  const e = err as { message?: string; path?: string; stack?: string };
  if (advice) {
    write(`kit: ${advice[0]}${e.path ? `: ${e.path}` : ''}`);
    write(`hint: ${advice[1]}`);
  } else {
    write(`kit: ${e?.message ?? String(err)}`);
    if (!verbose) write('hint: run again with -v for details');
  }
  if (verbose && e?.stack) write(e.stack);
  return 1;
}

interface Problem {
  file: string;
  line: number;
  column: number;
  field: string;
  message: string;
}

/** Errors that carry a list (an invalid Kitfile) show every item, one per line. */
function problemLines(err: object): string[] {
  const problems = (err as { problems?: unknown }).problems;
  if (!Array.isArray(problems)) return [];
  return (problems as Problem[]).map((p) => `${p.file}:${p.line}:${p.column}: ${p.field ? `${p.field}: ` : ''}${p.message}`);
}
