import { ExitCode, KitError } from '../errors.js';
import type { RegistryResponse } from './types.js';

/** One entry of the distribution-spec error body `{errors: [{code, message, detail}]}`. */
export interface RegistryErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** A KitError for an HTTP failure, keeping the status and the registry's own error codes. */
export class RegistryHttpError extends KitError {
  readonly status: number;
  readonly registryErrors: RegistryErrorEntry[];

  constructor(
    code: string,
    message: string,
    status: number,
    registryErrors: RegistryErrorEntry[],
    opts: { hint?: string; exitCode?: number } = {},
  ) {
    super(code, message, opts);
    this.status = status;
    this.registryErrors = registryErrors;
  }
}

/** Error bodies are small; a registry that sends more is not telling us anything useful. */
const MAX_ERROR_BODY = 64 * 1024;
const MAX_MESSAGE = 300;

/**
 * Text from a registry made fit for a terminal: one line, no control characters (a hostile
 * server must not be able to move the cursor or fake kit's own output), bounded length.
 */
export function oneLine(text: string, max = MAX_MESSAGE): string {
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * A URL as it may appear in a message: origin and path only. Query strings are left out
 * because pre-signed storage URLs carry their signature (a credential) there.
 */
export function displayUrl(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** The registry name a user would type for the host that answered. */
function registryOf(url: string): string {
  try {
    const host = new URL(url).host;
    return host === 'registry-1.docker.io' || host === 'index.docker.io' ? 'docker.io' : host;
  } catch {
    return 'the registry';
  }
}

async function readErrors(res: RegistryResponse): Promise<RegistryErrorEntry[]> {
  let text: string;
  try {
    text = await res.text(MAX_ERROR_BODY);
  } catch {
    return [];
  }
  try {
    const json = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(json.errors)) return [];
    return json.errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .map((e) => ({
        code: typeof e['code'] === 'string' ? e['code'] : 'UNKNOWN',
        message: typeof e['message'] === 'string' ? e['message'] : '',
        ...(e['detail'] !== undefined ? { detail: e['detail'] } : {}),
      }));
  } catch {
    return [];
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * Turns an unsuccessful registry response into the error the user sees. Reads (and so consumes)
 * the body. `what` says what kit was doing (`fetch manifest`), `ref` what it concerned.
 *
 *   fetch manifest reg.io/team/model:1: reg.io answered 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)
 */
export async function registryError(res: RegistryResponse, what: string, ref?: string): Promise<KitError> {
  const entries = await readErrors(res);
  const registry = registryOf(res.url);
  const status = `${res.status}${STATUS_TEXT[res.status] ? ` ${STATUS_TEXT[res.status]}` : ''}`;
  const detail = entries
    .slice(0, 3)
    .map((e) => (e.message ? `${e.code}: ${e.message}` : e.code))
    .join('; ');
  const message = oneLine(`${what}${ref ? ` ${ref}` : ''}: ${registry} answered ${status}${detail ? ` (${detail})` : ''}`, 500);

  let code = 'REGISTRY_ERROR';
  let hint: string | undefined;
  let exitCode: number = ExitCode.failure;
  if (res.status === 401) {
    code = 'UNAUTHORIZED';
    hint = `log in with \`kit login ${registry}\`, or check that your credentials are still valid`;
  } else if (res.status === 403) {
    code = 'DENIED';
    hint = `your account has no access to this on ${registry}; check the repository name and your permissions`;
  } else if (res.status === 404) {
    code = 'NOT_FOUND';
    exitCode = ExitCode.notFound;
    hint = 'check the repository name, tag or digest';
  } else if (res.status === 429) {
    code = 'TOO_MANY_REQUESTS';
    hint = `${registry} is rate-limiting requests; wait and try again, or log in for a higher limit`;
  } else if (res.status >= 500) {
    hint = `${registry} had a server error; try again later`;
  }
  return new RegistryHttpError(code, message, res.status, entries, hint === undefined ? { exitCode } : { hint, exitCode });
}
