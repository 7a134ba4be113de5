import { InvalidArgumentError, type Command } from 'commander';
import type { RegistrySettings } from '../registry/types.js';
import { oneOf } from './options.js';

/** Flags shared by every command that talks to a registry. */
export interface RemoteFlags {
  plainHttp?: boolean;
  tlsVerify?: boolean;
  caCert?: string;
  cert?: string;
  key?: string;
  proxy?: string;
  concurrency?: number;
  progress?: 'auto' | 'plain' | 'none';
}

function bool(value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new InvalidArgumentError('expected true or false');
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('expected a whole number from 1 to 64');
  return n;
}

export function addRemoteOptions(cmd: Command, opts: { transfer?: boolean } = {}): Command {
  cmd
    .option('--plain-http', 'talk to the registry over plain HTTP')
    .option('--tls-verify <bool>', 'verify the registry certificate (default true)', bool)
    .option('--ca-cert <file>', 'extra CA certificate(s) to trust, PEM')
    .option('--cert <file>', 'client certificate for mutual TLS, PEM')
    .option('--key <file>', 'client key for mutual TLS, PEM')
    .option('--proxy <url>', 'HTTP(S) proxy for the registry');
  if (opts.transfer) {
    cmd
      .option('--concurrency <n>', 'blobs transferred at once (default 4)', positiveInt)
      .option('--progress <mode>', 'auto (bars on a terminal), plain (periodic lines) or none', oneOf(['auto', 'plain', 'none'] as const), 'auto');
  }
  return cmd;
}

export function remoteSettings(f: RemoteFlags): RegistrySettings {
  const s: RegistrySettings = {};
  if (f.plainHttp) s.plainHttp = true;
  if (f.tlsVerify !== undefined) s.tlsVerify = f.tlsVerify;
  if (f.caCert) s.caCert = f.caCert;
  if (f.cert) s.cert = f.cert;
  if (f.key) s.key = f.key;
  if (f.proxy) s.proxy = f.proxy;
  return s;
}
