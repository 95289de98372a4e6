/**
 * A WebSocket client as the parent's Session sees it: who it claims to be
 * (HTTP Basic credentials for auth to check) and how a refusal is said,
 * in HTTP, before any upgrade.  The upgrade itself (101) is the worker's.
 */
import type * as net from 'node:net';
import type { GitRequest, WebRequest, Who } from '../ipc/messages';
import { answer } from './http_head';
import { forbidden, unauthorized, unavailable, upgradeRequired } from './web_answers';

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
