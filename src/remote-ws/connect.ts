/**
 * Opening the WebSocket to gotd: the HTTP upgrade of GET /REPO?service=…
 * with Basic credentials and Git-Protocol, TLS checked against the usual
 * authorities plus whatever the user said to trust (GOTD_WS_CAFILE, or
 * git's GIT_SSL_CAINFO / http.sslCAInfo).  A refusal comes back with its
 * status, body and Retry-After; a failure to connect as an error that
 * says what went wrong in words.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import WebSocket from 'ws';
import type { Duplex } from 'node:stream';
import { gitStream, MAX_PAYLOAD } from '../ipc/ws_stream';
import type { Credential } from './credential';
import { endpoint, type Target } from './target';

/** The server said no before the upgrade. */
export interface Refusal { status: number; body: string; retryAfter: string | null }

export class ConnectError extends Error {
  override name = 'ConnectError';
}

const HANDSHAKE_TIMEOUT_MS = 60_000;
const MAX_BODY = 4096;

/** The first value git has for a config key (for the URL, where it takes url-specific forms), or null. */
function gitConfig(args: string[]): string | null {
  const r = spawnSync('git', ['config', ...args], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() || null : null;
}

/** The protocol version git would ask for: protocol.version, 2 when unset (as git ≥ 2.26). */
export function wantedProtocol(service: string): string {
  if (service !== 'git-upload-pack') return '';
  const fromEnv = process.env.GIT_PROTOCOL;
  if (fromEnv) return fromEnv;
  const v = gitConfig(['--get', 'protocol.version']) ?? '2';
  return v === '2' || v === '1' ? `version=${v}` : '';
}

/**
 * Extra trusted certificates for wss://: every file named by
 * GOTD_WS_CAFILE, GIT_SSL_CAINFO or git's http.sslCAInfo, added to the
 * usual authorities; with the names of the settings, for messages.
 */
function trustedExtra(t: Target): { from: string; pem: string[] } | null {
  const named: Array<[string, string | null | undefined]> = [
    ['GOTD_WS_CAFILE', process.env.GOTD_WS_CAFILE],
    ['GIT_SSL_CAINFO', process.env.GIT_SSL_CAINFO],
    ['http.sslCAInfo', gitConfig(['--type=path', '--get-urlmatch', 'http.sslCAInfo', `${t.scheme}://${t.host}${t.path}`])],
  ];
  const from: string[] = [];
  const pem: string[] = [];
  for (const [name, file] of named) {
    if (!file) continue;
    try {
      pem.push(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConnectError(`cannot read the certificates named by ${name} (${file}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    from.push(name);
  }
  return from.length > 0 ? { from: from.join(', '), pem } : null;
}

const TLS_WORDS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in an untrusted self-signed certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is not signed by a trusted authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is not signed by a trusted authority',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another name',
};

function explain(t: Target, e: NodeJS.ErrnoException, extra: { from: string } | null): string {
  const code = e.code ?? '';
  const where = t.host;
  if (code in TLS_WORDS) {
    const hint = extra ? ` (not vouched for by ${extra.from})` : '; to trust it, set GOTD_WS_CAFILE=/path/to/ca.pem';
    return `TLS: cannot verify ${where}: ${TLS_WORDS[code]} (${code})${hint}`;
  }
  if (code === 'EPROTO' || /wrong version number|ssl|tls/i.test(e.message)) {
    return `TLS: handshake with ${where} failed (${e.message.split('\n')[0]})${t.scheme === 'wss' ? '; is it a ws:// (plain) port?' : ''}`;
  }
  if (code === 'ECONNREFUSED') return `cannot connect to ${where}: connection refused`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot connect to ${where}: no such host`;
  if (code === 'ETIMEDOUT') return `cannot connect to ${where}: timed out`;
  if (code === 'ECONNRESET' || code === 'EPIPE') return `connection to ${where} was reset${t.scheme === 'ws' ? '; is it a wss:// (TLS) port?' : ''}`;
  if (/Opening handshake has timed out/.test(e.message)) return `${where} did not answer the WebSocket upgrade in time`;
  return `cannot connect to ${where}: ${e.message}`;
}

/** An open session: the WebSocket and Git's byte stream over it. */
export interface Opened { ws: WebSocket; stream: Duplex; closed: { code: number; reason: string } | null }

/** Opens the WebSocket, or resolves with the server's refusal; throws ConnectError when it cannot talk to a server. */
export function open(t: Target, service: string, cred: Credential | null): Promise<Opened | Refusal> {
  const extra = t.scheme === 'wss' ? trustedExtra(t) : null;
  const headers: Record<string, string> = {};
  const protocol = wantedProtocol(service);
  if (protocol) headers['Git-Protocol'] = protocol;
  if (cred) headers.Authorization = `Basic ${Buffer.from(`${cred.user}:${cred.password}`, 'utf8').toString('base64')}`;

  return new Promise((resolve, reject) => {
    const ws = new WebSocket(endpoint(t, service), {
      headers,
      perMessageDeflate: false,
      maxPayload: MAX_PAYLOAD,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      followRedirects: false,
      ...(extra ? { ca: [...tls.rootCertificates, ...extra.pem] } : {}),
    });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      // At once: the server's first bytes may have come with the 101 and are emitted before any await returns.
      const opened: Opened = { ws, stream: gitStream(ws, { onEnd: 'marker' }), closed: null };
      ws.once('close', (code: number, reason: Buffer) => { opened.closed = { code, reason: reason.toString('utf8').slice(0, 200) }; });
      resolve(opened);
    });
    // Kept until open: destroying a refused request may report an error too.
    ws.on('error', (e: NodeJS.ErrnoException) => reject(new ConnectError(explain(t, e, extra))));
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (): void => {
        req.destroy();
        const body = Buffer.concat(chunks).toString('utf8').replace(/[^\x20-\x7e\u00a0-\uffff]+/g, ' ').trim().slice(0, 300);
        const ra = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, body, retryAfter: typeof ra === 'string' && /^[0-9]{1,9}$/.test(ra) ? ra : null });
      };
      res.on('data', (b: Buffer) => { if (size < MAX_BODY) { chunks.push(b); size += b.length; } });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
  });
}
