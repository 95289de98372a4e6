/**
 * gotd's answers to WebSocket clients, in one place so that every "no"
 * of a kind is byte-identical wherever it is said (listen or the parent)
 * and whatever the path was: 401 for missing or wrong credentials, 403
 * for an authenticated user who may not (or a repository that is not
 * there), 429/503 for limits, 426 for a permitted request that is not a
 * WebSocket upgrade.
 */
import { httpResponse } from './http_head';

export const REALM = 'gotd';

export function unauthorized(): Buffer {
  return httpResponse(401, 'authentication required', { 'WWW-Authenticate': `Basic realm="${REALM}"` });
}

export function forbidden(): Buffer {
  return httpResponse(403, 'access denied');
}

/** A per-user or global connection limit, or a server-side failure (503). */
export function unavailable(status: 429 | 503, message: string, retryAfterS = 5): Buffer {
  return httpResponse(status, message, { 'Retry-After': String(retryAfterS) });
}

export function upgradeRequired(): Buffer {
  return httpResponse(426, 'this is a Git WebSocket endpoint: use git clone ws://... (git-remote-ws)', {
    Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
  });
}

/** The worker's answer to a permitted upgrade. */
export function switchingProtocols(accept: string): Buffer {
  return Buffer.from([
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${accept}`,
    '', '',
  ].join('\r\n'), 'latin1');
}
