/**
 * The auth process: long-lived, holds no client socket.  Given who is
 * asking (kernel credentials or WebSocket credentials) and which repository
 * and service, it answers permit ro, permit rw or deny from the access
 * rules.  It resolves users and groups through the system's user database
 * (getent), which is why it, and not a session worker, may run programs.
 */
import { validateConfig } from '../config/validate';
import type { Config } from '../config/schema';
import { validateSecrets, NO_SECRETS, type Secrets } from '../config/secrets';
import { fromAuthSchema, parseMessage, toAuthSchema, type FromAuth } from '../ipc/messages';
import * as users from '../sys/users';
import { authorize, type UserDb } from './authorize';
import { childLog } from './log';

const log = childLog('auth');
const CACHE_MS = 5000;

/** getent answers, remembered briefly: sessions come in bursts (fetch then push). */
function cachedDb(): UserDb {
  const cache = new Map<string, { at: number; value: Promise<unknown> }>();
  function memo<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && now - hit.at < CACHE_MS) return hit.value as Promise<T>;
    if (cache.size > 10_000) cache.clear();
    const value = fn();
    cache.set(key, { at: now, value });
    return value;
  }
  return {
    byUid: (uid) => memo(`u${uid}`, () => users.accountByUid(uid)),
    byName: (name) => memo(`n${name}`, () => users.accountByName(name)),
    groups: (acct, extra) => memo(`g${acct.name}:${acct.gid}:${extra.join(',')}`, () => users.groupsOf(acct, extra)),
    groupNames: (gids) => memo(`G${gids.join(',')}`, () => users.groupNames(gids)),
  };
}

function send(msg: FromAuth): void {
  // Checked on the way out too: a bug here must not become a confusing message there.
  const ok = parseMessage(fromAuthSchema, msg);
  if (ok) process.send?.(ok);
}

function main(): void {
  if (!process.send) { process.stderr.write('gotd auth: must be started by gotd\n'); process.exit(1); }
  // Not niced: at nice 10 (with the getent it runs) auth was starved by the sessions it admits, and under
  // load every new client heard "authorization unavailable".  What bounds password guessing is that checks
  // run one at a time (password_check.ts), at most eight per address wait, and listen's per-address rate.
  let config: Config | null = null;
  let secrets: Secrets = NO_SECRETS;
  const db = cachedDb();

  process.on('message', (raw: unknown) => {
    const msg = parseMessage(toAuthSchema, raw);
    // A malformed message is the sender's problem: it gets no answer (its session times out).
    if (!msg) { log.error('malformed message from parent ignored'); return; }
    if (msg.type === 'config') {
      try {
        config = validateConfig(msg.config);
        secrets = msg.secrets === null || msg.secrets === undefined ? NO_SECRETS : validateSecrets(msg.secrets);
      } catch (e) {
        log.error(`configuration from parent refused, keeping the old one: ${(e as Error).message}`);
        return;
      }
      send({ type: 'configured' });
      return;
    }
    const cfg = config;
    if (!cfg) {
      send({ type: 'decision', id: msg.id, verdict: 'deny', authenticated: false, user: '?', reason: 'auth not configured yet', unavailable: true });
      return;
    }
    authorize(cfg, secrets, db, msg.who, msg.repo, msg.service).then(
      (r) => send({ type: 'decision', id: msg.id, ...r }),
      (e: unknown) => send({ type: 'decision', id: msg.id, verdict: 'deny', authenticated: false, user: '?', reason: `auth error: ${(e as Error).message}`, unavailable: true }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

main();
