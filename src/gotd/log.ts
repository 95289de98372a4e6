/**
 * Logging: one line per event on stderr.  Quiet by default (errors,
 * warnings and one line per session); -v adds start-up and process
 * events, -vv debugging detail.  Children inherit the level through
 * GOTD_VERBOSE and write to the stderr they inherit from the parent.
 */

export interface Log {
  error(msg: string): void;
  warn(msg: string): void;
  /** Always shown: the one line per session. */
  session(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

let verbosity = Number(process.env.GOTD_VERBOSE ?? '0') || 0;

export function setVerbosity(v: number): void {
  verbosity = v;
  process.env.GOTD_VERBOSE = String(v);
}

export function getVerbosity(): number {
  return verbosity;
}

// A stderr that went away (EPIPE) must not turn each log line into another error to log.
process.stderr.on('error', () => undefined);

function write(prefix: string, msg: string): void {
  // One line each: a newline in a message (a repository name, an error) must not forge log lines.
  process.stderr.write(`${prefix}: ${msg.replace(/[\r\n]+/g, ' ')}\n`);
}

export function makeLog(prefix: string): Log {
  return {
    error: (m) => write(prefix, m),
    warn: (m) => write(prefix, `warning: ${m}`),
    session: (m) => write(prefix, m),
    info: (m) => { if (verbosity >= 1) write(prefix, m); },
    debug: (m) => { if (verbosity >= 2) write(prefix, m); },
  };
}

export function childLog(role: string): Log {
  return makeLog(`gotd ${role}[${process.pid}]`);
}
