/**
 * gotd [-dnv] [-f config] [-s secrets]
 *
 * Reads and checks the configuration, creates gotd.sock (as root), drops to
 * the configured user for good, checks that workers can be confined, then
 * starts listen and auth and serves.  Without -d it detaches and logs
 * through logger(1) to syslog.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { crossCheck, loadConfig, loadSecrets, ConfigError } from '../config/load';
import { NO_SECRETS } from '../config/secrets';
import { notifyWarnings } from '../notify/request';
import { dropPrivileges } from '../sys/privdrop';
import { accountSync, type Account } from '../sys/users';
import { count, getopt, last, UsageError } from '../util/getopt';
import { Daemon } from './daemon';
import { detectLayers } from './layers';
import { makeLog, setVerbosity } from './log';
import { createUnixSocket } from './socket';
import { bindWebSockets, loadTls, type WebSockets } from './web_bind';

const USAGE = 'usage: gotd [-dnv] [-f config] [-s secrets]';
export const DEFAULT_CONFIG = '/etc/gotd.conf';
export const DEFAULT_SECRETS = '/etc/gotd-secrets.conf';
/** Set in the detached copy of gotd (no -d); the value is unused. */
const DETACHED = 'GOTD_DETACHED';

const log = makeLog('gotd');

function die(msg: string): never {
  process.stderr.write(`gotd: ${msg}\n`);
  if (process.env[DETACHED] && process.connected) process.send?.({ error: msg });
  process.exit(1);
}

interface Options { foreground: boolean; check: boolean; verbose: number; configPath: string; secretsPath: string | null }

function options(argv: string[]): Options {
  let p;
  try {
    p = getopt(argv, 'dnvf:s:');
  } catch (e) {
    process.stderr.write(`gotd: ${(e as UsageError).message}\n${USAGE}\n`);
    process.exit(1);
  }
  if (p.operands.length > 0) { process.stderr.write(`${USAGE}\n`); process.exit(1); }
  const secrets = last(p, 's');
  return {
    foreground: count(p, 'd') > 0,
    check: count(p, 'n') > 0,
    verbose: count(p, 'v'),
    configPath: last(p, 'f') ?? DEFAULT_CONFIG,
    // The default secrets file is used only if present; one named with -s must exist.
    secretsPath: secrets ?? (fs.existsSync(DEFAULT_SECRETS) ? DEFAULT_SECRETS : null),
  };
}

/** The account gotd runs as: the configured user when started as root, else whoever started it. */
function account(configUser: string, isRoot: boolean): Account | null {
  if (isRoot) return accountSync(configUser);
  const uid = process.getuid!();
  return accountSync(uid) ?? { name: String(uid), uid, gid: process.getgid!(), home: '/' };
}

/** Without -d: start a detached copy whose stderr goes to syslog; return once it serves. */
function detach(): void {
  let sink: 'ignore' | NodeJS.WritableStream = 'ignore';
  try {
    const logger = spawn('logger', ['-t', 'gotd', '-p', 'daemon.notice'], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    logger.on('error', () => undefined);
    if (logger.stdin) sink = logger.stdin;
    logger.unref();
  } catch { /* no logger: no log */ }
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['ignore', 'ignore', typeof sink === 'string' ? sink : 'pipe', 'ipc'],
    env: { ...process.env, [DETACHED]: '1' },
  });
  if (typeof sink !== 'string') child.stderr!.pipe(sink);
  child.on('message', (m: unknown) => {
    const err = typeof m === 'object' && m !== null && 'error' in m ? String((m as { error: unknown }).error) : null;
    if (err) { process.stderr.write(`gotd: ${err}\n`); process.exit(1); }
    child.stderr?.unpipe();
    child.disconnect();
    child.unref();
    process.exit(0);
  });
  child.on('exit', (code) => { process.stderr.write(`gotd: exited during start-up (${code})\n`); process.exit(1); });
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  setVerbosity(o.verbose);
  if (!o.check && !o.foreground && !process.env[DETACHED]) return detach();

  const isRoot = process.getuid?.() === 0;
  let loaded;
  let secrets = NO_SECRETS;
  let secretsRaw: unknown = null;
  let acct: Account | null;
  try {
    loaded = loadConfig(o.configPath);
    acct = account(loaded.config.user, isRoot);
    const owner = acct ?? { uid: process.getuid!(), gid: process.getgid!() };
    if (o.secretsPath) ({ secrets, raw: secretsRaw } = loadSecrets(o.secretsPath, owner));
    if (o.secretsPath) crossCheck(loaded.config, secrets, o.configPath);
    else if (loaded.config.repositories.some((r) => r.notify?.http.some((h) => h.hmac !== undefined || h.auth !== undefined))) {
      process.stderr.write(`gotd: warning: ${o.configPath}: notifications name secrets, but there is no secrets file\n`);
    }
  } catch (e) {
    if (e instanceof ConfigError) die(e.message);
    throw e;
  }
  const { config, raw } = loaded;

  if (o.check) {
    if (config.websocket?.tls) {
      // Like repository paths, the files are this machine's business; gotd reads them at start.
      try { loadTls(config.websocket.tls); } catch (e) { process.stderr.write(`gotd: warning: ${o.configPath}: ${(e as Error).message}\n`); }
    }
    if (!acct) process.stderr.write(`gotd: warning: ${o.configPath}: user: no account "${config.user}" on this system\n`);
    for (const w of notifyWarnings(config, o.configPath)) process.stderr.write(`gotd: warning: ${w}\n`);
    if (o.verbose > 0) {
      try {
        const d = await detectLayers(isRoot && acct ? { uid: acct.uid, gid: acct.gid } : undefined);
        for (const line of d.layers.detail) process.stderr.write(`gotd: ${line}\n`);
      } catch (e) {
        die((e as Error).message);
      }
    }
    process.stderr.write('configuration OK\n');
    process.exit(0);
  }
  if (!acct) die(`${o.configPath}: user: no account "${config.user}" on this system`);
  if (!isRoot && config.user !== acct.name) log.info(`not started as root: running as ${acct.name}, not ${config.user}`);

  let server;
  try {
    server = await createUnixSocket(config.listen);
  } catch (e) {
    die((e as Error).message);
  }
  const socketIno = fs.lstatSync(config.listen).ino;
  let web: WebSockets | null = null;
  if (config.websocket) {
    try { web = await bindWebSockets(config.websocket); } catch (e) { die(`${o.configPath}: ${(e as Error).message}`); }
  }
  if (isRoot) {
    try { dropPrivileges(acct); } catch (e) { die((e as Error).message); }
    log.info(`running as ${acct.name} (uid ${acct.uid}, gid ${acct.gid})`);
  }

  let detected;
  try {
    detected = await detectLayers();
  } catch (e) {
    die(`${(e as Error).message}; refusing to serve`);
  }
  for (const line of detected.layers.detail) log.info(line);
  if (!detected.layers.bwrap) log.warn('workers run without bubblewrap (see gotd -n -v)');

  let code = 0;
  const daemon = new Daemon({
    configPath: o.configPath, secretsPath: o.secretsPath, account: acct, config, configRaw: raw, secrets, secretsRaw,
    server, web, socketIno, confinement: detected.confinement, layers: detected.layers, log,
    exit: (c) => process.exit(c || code),
  });
  const stop = (sig: string): void => {
    log.info(`${sig}: stopping`);
    void daemon.stop().then(() => process.exit(code));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    daemon.reload().then((m) => log.info(m), (e: unknown) => log.error(`reload refused: ${(e as Error).message}`));
  });
  process.on('SIGPIPE', () => undefined);
  process.on('uncaughtException', (e) => {
    log.error(`internal error: ${e.stack ?? e.message}`);
    code = 1;
    void daemon.stop().then(() => process.exit(1));
  });
  try {
    await daemon.start();
  } catch (e) {
    await daemon.stop();
    die((e as Error).message);
  }
  log.info(`gotd ${process.pid} serving ${config.repositories.length} repositories on ${config.listen}`);
  if (process.env[DETACHED]) {
    process.send?.({ ready: true });
    process.disconnect?.();
  }
}

void main();
