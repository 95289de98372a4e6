/**
 * The Git engine's entry points as fixed in BRIEF.md (src/git/repository.ts,
 * upload_pack.ts, receive_pack.ts), loaded when a worker first needs them.
 */
import type { Conn } from './worker';

export interface SessionOutcome { ok: boolean; error?: string; bytesIn: number; bytesOut: number }
export interface ProtectRules { branches: string[]; branchNamespaces: string[]; tagNamespaces: string[] }
export interface RefUpdate { ref: string; old: string; new: string; ok: boolean; reason?: string }
export interface ReceiveOutcome extends SessionOutcome { updates: RefUpdate[]; pushOptions: string[] }

export interface Engine {
  Repository: { open(gitDir: string): unknown };
  uploadPack(repo: unknown, conn: Conn, opts: { protocol: 0 | 1 | 2; log?: (line: string) => void }): Promise<SessionOutcome>;
  receivePack(repo: unknown, conn: Conn, opts: { protocol: 0 | 1 | 2; protect: ProtectRules; log?: (line: string) => void }): Promise<ReceiveOutcome>;
}

export function repositoryModule(): Engine['Repository'] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../git/repository') as { Repository: Engine['Repository'] }).Repository;
}

export function uploadPackModule(): Engine['uploadPack'] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../git/upload_pack') as { uploadPack: Engine['uploadPack'] }).uploadPack;
}

export function receivePackModule(): Engine['receivePack'] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../git/receive_pack') as { receivePack: Engine['receivePack'] }).receivePack;
}
