/**
 * A fake Hugging Face Hub on 127.0.0.1, standing in for the real Hub (huggingface.co) in tests.
 *
 * It serves the documented response shapes that huggingface_hub parses (hf_api.py, file_download.py,
 * utils/_http.py, utils/_pagination.py) and the Hub's rate-limit documentation describes:
 *
 *   GET /api/{models|datasets}/{repo}/revision/{rev}   -> {_id, id, sha, private, gated, cardData, siblings, ...}
 *   GET /api/{models|datasets}/{repo}/tree/{rev}[/{path}]?recursive=true
 *       -> [{type: "file", oid, size, path, lfs?: {oid, size, pointerSize}}, {type: "directory", oid, size: 0, path}]
 *          paginated with `Link: <...&cursor=...>; rel="next"`
 *   GET|HEAD /{repo}/resolve/{rev}/{path}, /datasets/{repo}/resolve/{rev}/{path}
 *       regular files: 200 with ETag = git blob sha1, X-Repo-Commit;
 *       LFS files: 302 to a second server standing for the CDN (cdn-lfs / cas-bridge), with
 *       X-Repo-Commit, ETag, X-Linked-Etag (the sha256), X-Linked-Size and a signed-looking query
 *   errors: X-Error-Code RepoNotFound (401 without a token, 404 with one), RevisionNotFound,
 *       EntryNotFound, GatedRepo (401 without a token, 403 with a token not granted), and 429 with
 *       `RateLimit: "api";r=0;t=<s>` / `RateLimit-Policy: "fixed window";"api";q=<n>;w=300`.
 *
 * Every request is recorded (server, method, path, Authorization, Range) so tests can check
 * what the client sent where.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { runKit, type RunResult } from './cli.js';
import { tempDir } from './tmp.js';

export interface FakeFile {
  path: string;
  content: Buffer;
  /** Stored in LFS: resolve redirects to the CDN. */
  lfs?: boolean;
}

export interface FakeRepo {
  type: 'model' | 'dataset';
  id: string;
  /** Branch / tag name -> commit id. */
  refs: Record<string, string>;
  /** Commit id -> files at that commit. */
  commits: Record<string, FakeFile[]>;
  /** Files need a token in `grantedTokens`. */
  gated?: boolean;
  /** Everything needs a valid token. */
  private?: boolean;
  cardData?: Record<string, unknown>;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  authorization?: string;
  range?: string;
}

export interface CdnBehaviour {
  /** Stop sending (keep the connection open) after this many bytes of a response body. */
  stallAfter?: number;
  /** Answer 200 with the whole file even to a Range request. */
  ignoreRange?: boolean;
  /** Paths whose bytes are served wrong (one byte flipped). */
  corrupt?: string[];
  /** Refuse this many next requests with 403, as S3 / CloudFront do for an expired signed URL. */
  denyNext?: number;
}

export interface FakeHubOptions {
  repos: FakeRepo[];
  /** Tokens the Hub knows. */
  validTokens?: string[];
  /** Tokens with access to gated repositories. */
  grantedTokens?: string[];
  /** Tree entries per page (the real Hub: 1000, 50 with expand). */
  pageSize?: number;
}

export function gitBlobSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function sha256Hex(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** A deterministic commit id for tests. */
export function fakeCommit(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

/** A safetensors file: header for `tensors`, then zero bytes for their data. */
export function safetensorsFile(tensors: Record<string, { dtype: string; shape: number[] }>, metadata?: Record<string, string>): Buffer {
  const width: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.shape.reduce((n, d) => n * d, 1) * (width[t.dtype] ?? 1);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), Buffer.alloc(offset)]);
}

export class FakeHub {
  readonly requests: RecordedRequest[] = [];
  cdn: CdnBehaviour = {};
  /** The next this-many /api/ requests are answered 429. */
  rateLimit: { remaining: number; resetSeconds: number; retryAfter?: number } = { remaining: 0, resetSeconds: 0 };
  /** Bytes of file bodies the CDN has sent, by path. */
  readonly cdnSent = new Map<string, number>();
  url = '';
  cdnUrl = '';
  #hub: Server;
  #cdnServer: Server;
  #sockets = new Set<Socket>();
  #blobs = new Map<string, { file: FakeFile }>();

  constructor(readonly opts: FakeHubOptions) {
    this.#hub = createServer((req, res) => this.#handleHub(req, res));
    this.#cdnServer = createServer((req, res) => this.#handleCdn(req, res));
    for (const s of [this.#hub, this.#cdnServer]) {
      s.on('connection', (sock: Socket) => {
        this.#sockets.add(sock);
        sock.on('close', () => this.#sockets.delete(sock));
      });
    }
    for (const repo of opts.repos) for (const files of Object.values(repo.commits)) for (const f of files) if (f.lfs) this.#blobs.set(sha256Hex(f.content), { file: f });
  }

  static async start(opts: FakeHubOptions): Promise<FakeHub> {
    const hub = new FakeHub(opts);
    const listen = (s: Server) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
    hub.url = `http://127.0.0.1:${await listen(hub.#hub)}`;
    hub.cdnUrl = `http://127.0.0.1:${await listen(hub.#cdnServer)}`;
    return hub;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await Promise.all([this.#hub, this.#cdnServer].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  hubRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.server === 'hub');
  }

  cdnRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.server === 'cdn');
  }

  #record(server: 'hub' | 'cdn', req: IncomingMessage): void {
    const r: RecordedRequest = { server, method: req.method ?? 'GET', path: req.url ?? '' };
    if (req.headers.authorization) r.authorization = req.headers.authorization;
    if (req.headers.range) r.range = req.headers.range;
    this.requests.push(r);
  }

  #token(req: IncomingMessage): string | undefined {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    return m && (this.opts.validTokens ?? []).includes(m[1]!) ? m[1] : undefined;
  }

  #error(res: ServerResponse, status: number, code: string | undefined, message: string): void {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-error-message': message, 'x-request-id': 'Root=1-fake' };
    if (code) headers['x-error-code'] = code;
    res.writeHead(status, headers);
    res.end(JSON.stringify({ error: message }));
  }

  #repoNotFound(req: IncomingMessage, res: ServerResponse): void {
    // The real Hub answers 401 to an anonymous request for a missing (or private) repository.
    this.#error(res, this.#token(req) ? 404 : 401, 'RepoNotFound', 'Repository not found');
  }

  #find(type: string, id: string): FakeRepo | undefined {
    return this.opts.repos.find((r) => `${r.type}s` === type && r.id === id);
  }

  #commitOf(repo: FakeRepo, rev: string): string | undefined {
    if (repo.commits[rev]) return rev;
    const c = repo.refs[rev];
    return c && repo.commits[c] ? c : undefined;
  }

  #handleHub(req: IncomingMessage, res: ServerResponse): void {
    this.#record('hub', req);
    const url = new URL(req.url ?? '/', this.url);
    const segs = url.pathname.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    if (segs[0] === 'api') {
      if (this.rateLimit.remaining > 0) {
        this.rateLimit.remaining--;
        const headers: Record<string, string> = {
          'content-type': 'application/json',
          ratelimit: `"api";r=0;t=${this.rateLimit.resetSeconds}`,
          'ratelimit-policy': '"fixed window";"api";q=500;w=300',
        };
        if (this.rateLimit.retryAfter !== undefined) headers['retry-after'] = String(this.rateLimit.retryAfter);
        res.writeHead(429, headers);
        res.end(JSON.stringify({ error: 'You have exceeded our hourly quotas for action: api. We invite you to retry later.' }));
        return;
      }
      return this.#api(req, res, segs.slice(1), url);
    }
    // /{org}/{name}/resolve/{rev}/{path...} or /datasets/{org}/{name}/resolve/...
    const type = segs[0] === 'datasets' ? 'datasets' : 'models';
    const rest = segs[0] === 'datasets' ? segs.slice(1) : segs;
    const at = rest.indexOf('resolve');
    if (at < 1) return this.#error(res, 404, undefined, 'Not found');
    const repo = this.#find(type, rest.slice(0, at).join('/'));
    if (!repo || (repo.private && !this.#token(req))) return this.#repoNotFound(req, res);
    const commit = this.#commitOf(repo, rest[at + 1] ?? '');
    if (!commit) return this.#error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rest[at + 1]}`);
    const path = rest.slice(at + 2).join('/');
    if (repo.gated) {
      const token = this.#token(req);
      if (!token) return this.#error(res, 401, 'GatedRepo', `Access to model ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
      if (!(this.opts.grantedTokens ?? []).includes(token)) {
        return this.#error(res, 403, 'GatedRepo', `Access to model ${repo.id} is restricted and you are not in the authorized list. Visit ${this.url}/${repo.id} to ask for access.`);
      }
    }
    const file = repo.commits[commit]!.find((f) => f.path === path);
    if (!file) return this.#error(res, 404, 'EntryNotFound', `${path} does not exist on "${rest[at + 1]}"`);
    if (file.lfs) {
      const sha = sha256Hex(file.content);
      res.writeHead(302, {
        location: `${this.cdnUrl}/repos/${sha.slice(0, 2)}/${sha}?response-content-disposition=attachment&X-Amz-Signature=fake${Date.now()}`,
        'x-repo-commit': commit,
        etag: `"${gitBlobSha1(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${file.content.length}\n`))}"`,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(file.content.length),
        'content-length': '0',
      });
      res.end();
      return;
    }
    this.#serveBytes(req, res, file.content, { etag: `"${gitBlobSha1(file.content)}"`, 'x-repo-commit': commit }, false, path);
  }

  #api(req: IncomingMessage, res: ServerResponse, segs: string[], url: URL): void {
    // {models|datasets}/{org}/{name}/{revision|tree}/{rev}[/{path}]
    const type = segs[0] ?? '';
    const kindAt = segs.findIndex((s, i) => i >= 2 && (s === 'revision' || s === 'tree'));
    if (kindAt < 0) return this.#error(res, 404, undefined, 'Not found');
    const repo = this.#find(type, segs.slice(1, kindAt).join('/'));
    if (!repo || (repo.private && !this.#token(req))) return this.#repoNotFound(req, res);
    const rev = segs[kindAt + 1] ?? '';
    const commit = this.#commitOf(repo, rev);
    if (!commit) return this.#error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const files = repo.commits[commit]!;
    if (segs[kindAt] === 'revision') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          _id: `fake${repo.id}`,
          id: repo.id,
          author: repo.id.split('/')[0],
          sha: commit,
          lastModified: '2025-01-01T00:00:00.000Z',
          private: repo.private === true,
          gated: repo.gated ? 'manual' : false,
          disabled: false,
          tags: (repo.cardData?.['tags'] as string[] | undefined) ?? [],
          ...(repo.cardData ? { cardData: repo.cardData } : {}),
          siblings: files.map((f) => ({ rfilename: f.path })),
        }),
      );
      return;
    }
    // tree
    const prefix = segs.slice(kindAt + 2).join('/');
    const recursive = /^(true|1|True)$/.test(url.searchParams.get('recursive') ?? '');
    const entries: Array<Record<string, unknown>> = [];
    const dirs = new Set<string>();
    for (const f of files) {
      if (prefix && !f.path.startsWith(`${prefix}/`)) continue;
      const rel = prefix ? f.path.slice(prefix.length + 1) : f.path;
      const parts = rel.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add([prefix, ...parts.slice(0, i)].filter((x) => x).join('/'));
      if (!recursive && parts.length > 1) continue;
      const entry: Record<string, unknown> = { type: 'file', oid: gitBlobSha1(f.content), size: f.content.length, path: f.path };
      if (f.lfs) entry['lfs'] = { oid: sha256Hex(f.content), size: f.content.length, pointerSize: 134 };
      entries.push(entry);
    }
    for (const d of dirs) {
      if (!recursive && d.split('/').length > (prefix ? prefix.split('/').length + 1 : 1)) continue;
      entries.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
    }
    entries.sort((a, b) => String(a['path']).localeCompare(String(b['path'])));
    const pageSize = this.opts.pageSize ?? 1000;
    const cursor = Number(url.searchParams.get('cursor') ?? '0');
    const page = entries.slice(cursor, cursor + pageSize);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (cursor + pageSize < entries.length) {
      const next = new URL(url.href);
      next.searchParams.set('cursor', String(cursor + pageSize));
      headers['link'] = `<${next.href}>; rel="next"`;
    }
    res.writeHead(200, headers);
    res.end(JSON.stringify(page));
  }

  #handleCdn(req: IncomingMessage, res: ServerResponse): void {
    this.#record('cdn', req);
    const url = new URL(req.url ?? '/', this.cdnUrl);
    const sha = url.pathname.split('/').pop() ?? '';
    const blob = this.#blobs.get(sha);
    const expired = (this.cdn.denyNext ?? 0) > 0;
    if (expired) this.cdn.denyNext = this.cdn.denyNext! - 1;
    if (!blob || !url.searchParams.get('X-Amz-Signature') || expired) {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<Error><Code>AccessDenied</Code></Error>');
      return;
    }
    let content = blob.file.content;
    if (this.cdn.corrupt?.includes(blob.file.path)) {
      content = Buffer.from(content);
      content[content.length - 1] = content[content.length - 1]! ^ 0xff;
    }
    this.#serveBytes(req, res, content, { etag: `"${sha}"` }, true, blob.file.path);
  }

  #serveBytes(req: IncomingMessage, res: ServerResponse, content: Buffer, headers: Record<string, string>, cdn: boolean, path: string): void {
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !(cdn && this.cdn.ignoreRange)) {
      start = Number(range[1]);
      if (start >= content.length) {
        res.writeHead(416, { 'content-range': `bytes */${content.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${content.length - 1}/${content.length}`;
    }
    const body = content.subarray(start);
    res.writeHead(status, { ...headers, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stall = cdn ? this.cdn.stallAfter : undefined;
    if (stall !== undefined && stall < body.length) {
      res.write(body.subarray(0, stall), () => this.cdnSent.set(path, (this.cdnSent.get(path) ?? 0) + stall));
      return; // and never more: the client sees a stalled download
    }
    res.end(body, () => {
      if (cdn) this.cdnSent.set(path, (this.cdnSent.get(path) ?? 0) + body.length);
    });
  }
}

// ---- set-up shared by the `kit import` tests --------------------------------------------------

export const TOKEN = 'hf_test_token_0123456789';
export const GRANTED = 'hf_granted_token_0123456789';

/** Environment for a kit process talking to the fake Hub: nothing from the real user's setup. */
export async function hubEnv(hubUrl: string, extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const hfHome = await tempDir('kit-hf-home-');
  return {
    HF_ENDPOINT: hubUrl,
    HF_HOME: hfHome,
    HF_TOKEN: '',
    HUGGING_FACE_HUB_TOKEN: '',
    HF_TOKEN_PATH: '',
    HF_HUB_CACHE: '',
    HUGGINGFACE_HUB_CACHE: '',
    HF_HUB_OFFLINE: '',
    ...extra,
  };
}

export async function importKit(args: string[], home: string, env: Record<string, string>): Promise<RunResult> {
  return runKit(['import', ...args], { home, env });
}

export const MODEL_COMMIT = fakeCommit('model-v1');
export const MODEL_CARD = ['---', 'license: apache-2.0', 'base_model: org/base-model', 'pipeline_tag: text-generation', 'library_name: transformers', 'tags:', '  - tiny', '  - test', '---', '# Tiny model', '', 'For tests.'].join('\n');

/** 1,000,000 + 200,000 + 256 parameters of bf16 (with one fp32 norm): paramSize 1.2M, precision bf16. */
export function modelWeights(): Buffer {
  return safetensorsFile(
    {
      'model.embed_tokens.weight': { dtype: 'BF16', shape: [1000, 1000] },
      'model.layers.0.mlp.weight': { dtype: 'BF16', shape: [200, 1000] },
      'model.norm.weight': { dtype: 'F32', shape: [256] },
    },
    { format: 'pt' },
  );
}

export function modelFiles(): FakeFile[] {
  return [
    { path: '.gitattributes', content: Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n') },
    { path: 'README.md', content: Buffer.from(MODEL_CARD) },
    { path: 'config.json', content: Buffer.from(JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'bfloat16' })) },
    { path: 'generation_config.json', content: Buffer.from('{"do_sample": true}') },
    { path: 'model.safetensors', content: modelWeights(), lfs: true },
    { path: 'tokenizer.json', content: Buffer.from(JSON.stringify({ version: '1.0', vocab: { a: 0, b: 1 } })) },
    { path: 'tokenizer.model', content: Buffer.from('sentencepiece'), lfs: true },
    { path: 'onnx/model.onnx', content: Buffer.from('ONNX'.repeat(100)), lfs: true },
  ];
}

export function modelRepo(extra: Partial<FakeRepo> = {}): FakeRepo {
  return { type: 'model', id: 'test-org/Tiny-Model', refs: { main: MODEL_COMMIT }, commits: { [MODEL_COMMIT]: modelFiles() }, ...extra };
}

export function cacheRoot(home: string): string {
  return join(home, 'hf-cache');
}
