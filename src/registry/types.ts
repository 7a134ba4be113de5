import type { Readable } from 'node:stream';

/**
 * The seam between the HTTP/auth layer (http.ts, auth/, credentials/) and the protocol layer
 * (repository.ts and friends). The protocol layer builds distribution-spec requests; the
 * client sends them with retries, authentication and the redirect policy.
 */
export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Absolute URL, or a path beginning with /v2/ resolved against the client's base URL. */
  url: string;
  headers?: Record<string, string>;
  /** A body that can be sent again on a retry. */
  body?: Buffer | string;
  /** A streaming body; called once per attempt. A stream that cannot be recreated: set retry false. */
  stream?: () => Readable | AsyncIterable<Buffer>;
  /** Auth scopes the request needs, e.g. ['repository:team/model:pull,push']. */
  scopes: string[];
  /** Follow redirects (blob GETs go to object storage). Authorization never crosses origins. */
  followRedirects?: boolean;
  /** false: send once (a body that cannot be replayed). Default true. */
  retry?: boolean;
  signal?: AbortSignal;
}

export interface RegistryResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string | undefined>;
  /** The final URL, after redirects. */
  url: string;
  /** Must be consumed or destroyed by the caller. */
  body: Readable;
  /** Reads the body as text, refusing more than maxBytes (default 4 MiB). */
  text(maxBytes?: number): Promise<string>;
  /** Discards the body. */
  dump(): Promise<void>;
}

export interface RegistryClient {
  /** host[:port] as written in references (`docker.io` for Docker Hub). */
  readonly registry: string;
  /** scheme://host[:port] actually contacted (`https://registry-1.docker.io` for Docker Hub). */
  readonly baseUrl: string;
  request(req: RegistryRequest): Promise<RegistryResponse>;
}

/** Connection settings of one registry, from flags or the per-registry config file. */
export interface RegistrySettings {
  plainHttp?: boolean;
  /** Default true. */
  tlsVerify?: boolean;
  /** PEM file of extra CA certificates to trust. */
  caCert?: string;
  /** Client certificate and key (PEM files) for mutual TLS. */
  cert?: string;
  key?: string;
  /** http(s) proxy URL. */
  proxy?: string;
}
