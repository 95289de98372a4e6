/**
 * One HTTP notification: a POST of the JSON body to the target's URL over
 * http or https (Node's own client; https verifies the server certificate
 * as usual).  With an [hmac] secret the request carries
 *
 *   X-Gotd-Signature: <hex HMAC-SHA256 of the exact body bytes>
 *
 * (64 lower-case hex digits, no prefix; the key is the secret string's UTF-8
 * bytes as written in the secrets file).  With an [auth.LABEL] the request
 * carries HTTP Basic credentials — never over plain http:// unless the
 * target says insecure = true.  Redirects are not followed.  Any 2xx answer
 * is success; 408, 429, 5xx, timeouts and network errors are worth another
 * try; other answers are not.
 */
import { createHmac } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';

export const USER_AGENT = 'gotd-notify/0.1';

export interface HttpTarget {
  url: string;
  /** The [hmac] secret itself (not its label). */
  hmacSecret?: string;
  auth?: { user: string; password: string };
  insecure: boolean;
}

export interface PostOptions {
  /** Whole-request deadline. */
  timeoutMs: number;
  /** Extra trusted CA certificates (tests). */
  ca?: string | Buffer;
}

/** A failed delivery; permanent failures are not retried. */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(message: string, readonly permanent: boolean) {
    super(message);
  }
}

/** The hex signature a receiver recomputes to check a body. */
export function signature(secret: string, body: Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest('hex');
}

/** Why a target must not be used as configured, or null.  Checked at config time and again before sending. */
export function targetProblem(url: string, hasAuth: boolean, insecure: boolean): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a valid URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'not an http:// or https:// URL';
  if (u.username || u.password) return 'credentials belong in the secrets file ([auth.LABEL]), not in the URL';
  if (hasAuth && u.protocol === 'http:' && !insecure) {
    return 'refusing to send Basic auth credentials over plain http:// (use https://, or set insecure = true)';
  }
  return null;
}

/** The URL without query and fragment, for log lines (a query may carry a token). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(bad URL)';
  }
}

export function post(target: HttpTarget, body: Buffer, opts: PostOptions): Promise<void> {
  const problem = targetProblem(target.url, target.auth !== undefined, target.insecure);
  if (problem) return Promise.reject(new DeliveryError(problem, true));
  const url = new URL(target.url);
  const headers: http.OutgoingHttpHeaders = {
    'Content-Type': 'application/json',
    'Content-Length': body.length,
    'User-Agent': USER_AGENT,
    Connection: 'close',
  };
  if (target.hmacSecret !== undefined) headers['X-Gotd-Signature'] = signature(target.hmacSecret, body);
  if (target.auth) {
    headers.Authorization = 'Basic ' + Buffer.from(`${target.auth.user}:${target.auth.password}`, 'utf8').toString('base64');
  }
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: DeliveryError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err); else resolve();
    };
    const req = mod.request(url, {
      method: 'POST',
      headers,
      agent: false,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
    }, (res) => {
      const code = res.statusCode ?? 0;
      // The answer's body is not needed; read it away (bounded by the deadline) so the socket can close.
      res.on('data', () => { /* discarded */ });
      res.on('error', () => { /* the status is all that matters */ });
      if (code >= 200 && code < 300) { finish(null); return; }
      const retry = code === 408 || code === 429 || code >= 500;
      finish(new DeliveryError(`HTTP ${code}${res.statusMessage ? ' ' + res.statusMessage : ''}`, !retry));
    });
    timer = setTimeout(() => finish(new DeliveryError(`no answer within ${opts.timeoutMs} ms`, false)), opts.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      // Certificate problems will not fix themselves on a retry.
      const tls = typeof e.code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(e.code);
      finish(new DeliveryError(e.message || String(e.code), tls));
    });
    req.end(body);
  });
}
