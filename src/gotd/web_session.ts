/**
 * A WebSocket client as the parent's Session sees it: who it claims to be
 * (HTTP Basic credentials for auth to check) and how a refusal is said,
 * in HTTP, before any upgrade.  The upgrade itself (101) is the worker's.
 */
import type * as net from 'node:net';
import type { GitRequest, WebRequest, Who } from '../ipc/messages';
import { answer } from './http_head';
import { forbidden, unauthorized, unavailable, upgradeRequired } from './web_answers';

/** Password checks one client address may have waiting in auth at a time. */
export const CHECKS_PER_ADDRESS = 8;

/**
 * Bounds the password checks in flight per client address: scrypt is
 * costly, and the rate alone lets a burst of guesses (a full bucket) into
 * auth's queue before the first wrong password is known.  Past the bound a
 * client with credentials hears 429 without auth being asked.
 */
export class PasswordGate {
  private readonly inFlight = new Map<string, number>();

  /** Takes a slot for address; false when it has CHECKS_PER_ADDRESS already. */
  enter(address: string): boolean {
    const n = this.inFlight.get(address) ?? 0;
    if (n >= CHECKS_PER_ADDRESS) return false;
    this.inFlight.set(address, n + 1);
    return true;
  }

  leave(address: string): void {
    const n = (this.inFlight.get(address) ?? 1) - 1;
    if (n <= 0) this.inFlight.delete(address); else this.inFlight.set(address, n);
  }
}

export class WebClient {
  constructor(readonly request: WebRequest) {}

  who(): Who {
    return { kind: 'web', user: this.request.user, password: this.request.password };
  }

  /** The request in the shape Session keeps for every client. */
  gitRequest(): GitRequest {
    return { type: 'git', service: this.request.service, repo: this.request.repo, protocol: this.request.protocol };
  }

  refuse(sock: net.Socket, status: 401 | 403 | 426 | 429 | 503, message: string): void {
    switch (status) {
      case 401: return answer(sock, unauthorized());
      case 403: return answer(sock, forbidden());
      case 426: return answer(sock, upgradeRequired());
      case 429: case 503: return answer(sock, unavailable(status, message));
    }
  }
}
