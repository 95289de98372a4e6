/**
 * receive-pack, protocol v0/v1 (gitprotocol-pack(5)): ref advertisement,
 * command list, push options, the packfile, then report-status. A client
 * asking for protocol v2 gets v0, as git's own receive-pack does.
 *
 * Nothing a client sends becomes visible before it is checked: the pack is
 * indexed into a quarantine, every object is fsck'd, each new ref value
 * must be connected (all it reaches exists), the protect rules must allow
 * the move, and the refs are then updated under lock files with
 * compare-and-swap against the values the client saw. Only then does the
 * pack move into objects/pack — just before the first ref moves.
 */
import * as path from 'node:path';
import { ByteReader } from './byte_reader';
import { Connectivity, ConnectivityError, type PackObjects } from './connectivity';
import { FsckError, fsckObject, fsckSpecialBlob, newSpecialBlobs, type SpecialBlobs } from './fsck';
import { PackIndexer, PackIndexError, type IndexedPack } from './index_pack';
import { ObjectCorruptError, ObjectStore } from './odb';
import type { PackFile } from './pack';
import { errPkt, FLUSH, pkt, pktLine, PktReader, ProtocolError } from './pktline';
import { protectProblem, type ProtectRules } from './protect';
import { Quarantine, cleanStale } from './quarantine';
import { RefTransaction, ZERO_OID } from './ref_update';
import { CommitGraph, MissingObjectError, Reachability } from './revwalk';
import { pushRefnameProblem } from './refname';
import type { Repository } from './repository';
import { ObjectFormatError, type ObjectType } from './object';
import { Output, bandPackets, BAND_DATA, BAND_ERROR, BAND_PROGRESS } from './sideband';
import type { Conn, SessionOutcome } from './upload_pack';
import { AGENT } from './version';

export type { ProtectRules } from './protect';

export type { Conn, SessionOutcome } from './upload_pack';

export interface ReceivePackOptions {
  protocol: 0 | 1 | 2;
  protect: ProtectRules;
  log?: (line: string) => void;
  /** Lock files and quarantines older than this (ms since the epoch) were left by a crash and may be removed. */
  staleBefore?: number;
  /** Largest pack accepted, in bytes. */
  maxInputBytes?: number;
  /** How long one pkt-line from the client may take to arrive whole, ms (0 or absent: no limit). */
  lineTimeoutMs?: number;
  /** Keepalive interval while the push is processed, ms (side-band clients; default 5 s). */
  keepAliveMs?: number;
  /** Called at named steps of a push; crash tests stop the process there. */
  checkpoint?: (name: string) => void;
}

export interface RefUpdate { ref: string; old: string; new: string; ok: boolean; reason?: string }
export interface ReceiveOutcome extends SessionOutcome { updates: RefUpdate[]; pushOptions: string[] }

const CAPABILITIES = [
  'report-status', 'report-status-v2', 'delete-refs', 'side-band-64k', 'quiet', 'atomic', 'ofs-delta',
  'push-options', 'object-format=sha1', `agent=${AGENT}`,
].join(' ');

/** More commands or push options than this in one push is refused. */
const MAX_COMMANDS = 100000;
/** git's receive.keepAlive default, and its keepalive: a band-1 packet with nothing in it. */
const KEEPALIVE_MS = 5000;
const KEEPALIVE = Buffer.from('0005\x01', 'latin1');
const MAX_PUSH_OPTIONS = 1000;
const MAX_PUSH_OPTION_BYTES = 1 << 20;

const COMMAND_RE = /^([0-9a-f]{40}) ([0-9a-f]{40}) (.+)$/;

interface Command {
  ref: string;
  old: string;
  new: string;
  /** Why it was refused; null while it may still go through. */
  error: string | null;
}

interface Request {
  commands: Command[];
  caps: Set<string>;
  pushOptions: string[];
}

/** Strict UTF-8 text of a pkt-line payload without its LF, or null if not UTF-8. */
function text(data: Buffer): string | null {
  const end = data.length > 0 && data[data.length - 1] === 0x0a ? data.length - 1 : data.length;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(0, end));
  } catch {
    return null;
  }
}

async function readRequest(pkts: PktReader): Promise<Request> {
  const commands: Command[] = [];
  const caps = new Set<string>();
  const seen = new Set<string>();
  let first = true;
  for (;;) {
    const p = await pkts.read();
    if (p.kind === 'flush') break;
    if (p.kind === 'eof') {
      if (first) return { commands, caps, pushOptions: [] }; // a client that only wanted the refs
      throw new ProtocolError('protocol error: command list cut short');
    }
    if (p.kind !== 'data') throw new ProtocolError(`protocol error: unexpected ${p.kind} packet in command list`);
    let data = p.data;
    if (first) {
      const nul = data.indexOf(0);
      if (nul >= 0) {
        for (const c of (text(data.subarray(nul + 1)) ?? '').split(' ')) if (c) caps.add(c);
        data = data.subarray(0, nul);
      }
    }
    const line = text(data);
    if (line === null) throw new ProtocolError('protocol error: command is not UTF-8');
    if (line.startsWith('shallow ')) {
      // A shallow client's boundary: nothing to do, the connectivity check decides.
      if (!/^shallow [0-9a-f]{40}$/.test(line)) throw new ProtocolError(`protocol error: bad shallow line`);
      continue;
    }
    if (line.startsWith('push-cert')) throw new ProtocolError('push certificates are not supported');
    const m = COMMAND_RE.exec(line);
    if (!m) throw new ProtocolError(`protocol error: expected old/new/ref, got '${line.slice(0, 200)}'`);
    first = false;
    if (commands.length >= MAX_COMMANDS) throw new ProtocolError(`too many ref updates in one push (over ${MAX_COMMANDS})`);
    const cmd: Command = { old: m[1]!, new: m[2]!, ref: m[3]!, error: null };
    if (seen.has(cmd.ref)) cmd.error = 'duplicate ref update';
    seen.add(cmd.ref);
    commands.push(cmd);
  }
  const pushOptions: string[] = [];
  if (commands.length > 0 && caps.has('push-options')) {
    let bytes = 0;
    for (;;) {
      const p = await pkts.read();
      if (p.kind === 'flush') break;
      if (p.kind !== 'data') throw new ProtocolError('protocol error: push options cut short');
      const opt = text(p.data);
      if (opt === null) throw new ProtocolError('protocol error: push option is not UTF-8');
      bytes += opt.length;
      if (pushOptions.length >= MAX_PUSH_OPTIONS || bytes > MAX_PUSH_OPTION_BYTES) throw new ProtocolError('too many push options');
      pushOptions.push(opt);
    }
  }
  return { commands, caps, pushOptions };
}

/** Objects of the quarantined pack first, then the repository's. */
class PushObjects {
  readonly pack: PackObjects | null = null;
  private readonly file: PackFile | null = null;

  constructor(readonly indexed: IndexedPack | null, incoming: ObjectStore | null, readonly repo: ObjectStore) {
    if (!indexed?.name || !incoming) return;
    const file = incoming.packs[0];
    if (!file || incoming.packs.length !== 1 || file.count !== indexed.count) throw new Error('quarantine does not hold the pack just indexed');
    this.file = file;
    this.pack = {
      find: (name, off) => file.find(name, off),
      type: (pos) => indexed.typeAt(pos),
      read: (pos) => {
        // Positions are pack order for both indexer and reader; a mismatch would be a bug, not bad input.
        if (file.offsetOf(pos) !== indexed.offsetAt(pos)) throw new Error(`pack position ${pos} disagrees between indexer and reader`);
        return incoming.readPacked(file, pos).data;
      },
    };
  }

  private pos(oid: string): number {
    return this.file && this.pack ? this.pack.find(Buffer.from(oid, 'hex'), 0) : -1;
  }

  typeOf(oid: string): ObjectType | null {
    const pos = this.pos(oid);
    if (pos >= 0) return this.pack!.type(pos);
    return this.repo.header(oid)?.type ?? null;
  }

  read(oid: string): { type: ObjectType; data: Buffer } | null {
    const pos = this.pos(oid);
    if (pos >= 0) return { type: this.pack!.type(pos), data: this.pack!.read(pos) };
    return this.repo.read(oid);
  }
}

/** git's fsck_finish: the blobs trees name .gitmodules or .gitattributes, wherever they are. */
function checkSpecialBlobs(special: SpecialBlobs, objects: PushObjects): void {
  for (const oid of special.gitmodules) fsckSpecialBlob(oid, 'gitmodules', objects.read(oid));
  for (const oid of special.gitattributes) fsckSpecialBlob(oid, 'gitattributes', objects.read(oid));
}

class Session {
  private readonly out: Output;
  private readonly reader: ByteReader;
  private readonly pkts: PktReader;
  private sideband = false;
  private quiet = false;

  constructor(private readonly repo: Repository, conn: Conn, private readonly opts: ReceivePackOptions) {
    this.out = new Output(conn.output);
    this.reader = new ByteReader(conn.input);
    this.pkts = new PktReader(this.reader, opts.lineTimeoutMs ?? 0);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private checkpoint(name: string): void {
    this.opts.checkpoint?.(name);
  }

  async advertise(): Promise<void> {
    const lines: Buffer[] = [];
    if (this.opts.protocol === 1) lines.push(pktLine('version 1'));
    const refs = this.repo.refs.list('refs/');
    if (refs.length === 0) {
      lines.push(pkt(`${ZERO_OID} capabilities^{}\0${CAPABILITIES}\n`));
    } else {
      refs.forEach((r, i) => lines.push(pkt(i === 0 ? `${r.oid} ${r.name}\0${CAPABILITIES}\n` : `${r.oid} ${r.name}\n`)));
    }
    lines.push(FLUSH);
    await this.out.write(Buffer.concat(lines));
  }

  /** Progress and warnings on band 2 (nothing without side-band, or with quiet). */
  private async say(message: string): Promise<void> {
    if (!this.sideband || this.quiet) return;
    for (const p of bandPackets(BAND_PROGRESS, Buffer.from(message, 'utf8'), 65520)) await this.out.write(p);
  }

  private async report(caps: Set<string>, unpack: string, commands: Command[]): Promise<void> {
    if (!caps.has('report-status') && !caps.has('report-status-v2')) {
      if (unpack !== 'ok') await this.out.write(errPkt(unpack));
      return;
    }
    const lines: Buffer[] = [pktLine(`unpack ${unpack}`)];
    for (const c of commands) lines.push(pktLine(c.error ? `ng ${c.ref} ${c.error}` : `ok ${c.ref}`));
    lines.push(FLUSH);
    const body = Buffer.concat(lines);
    if (this.sideband) {
      for (const p of bandPackets(BAND_DATA, body, 65520)) await this.out.write(p);
      await this.out.write(FLUSH);
    } else {
      await this.out.write(body);
    }
  }

  async run(): Promise<ReceiveOutcome> {
    const outcome: ReceiveOutcome = { ok: false, bytesIn: 0, bytesOut: 0, updates: [], pushOptions: [] };
    try {
      await this.advertise();
      const req = await this.readRequestOrErr();
      if ('error' in req) {
        outcome.error = req.error;
        return outcome;
      }
      outcome.pushOptions = req.pushOptions;
      for (const o of req.pushOptions) this.log(`receive-pack: push option: ${o}`);
      if (req.commands.length === 0) {
        outcome.ok = true;
        return outcome;
      }
      this.sideband = req.caps.has('side-band-64k');
      this.quiet = req.caps.has('quiet');
      const unpack = await this.keptAlive(() => this.execute(req));
      await this.report(req.caps, unpack, req.commands);
      outcome.updates = req.commands.map((c) => ({
        ref: c.ref, old: c.old, new: c.new, ok: c.error === null, ...(c.error ? { reason: c.error } : {}),
      }));
      outcome.ok = unpack === 'ok' && req.commands.every((c) => c.error === null);
      if (unpack !== 'ok') outcome.error = unpack;
      return outcome;
    } catch (err) {
      // Not the client's fault (or the client vanished): say little, log all.
      outcome.error = (err as Error).message;
      this.log(`receive-pack: internal error: ${(err as Error).stack ?? outcome.error}`);
      try {
        // With side-band the client reads bands: the error goes on band 3.
        if (this.sideband) for (const p of bandPackets(BAND_ERROR, Buffer.from('internal server error\n'), 65520)) await this.out.write(p);
        else await this.out.write(errPkt('internal server error'));
      } catch {
        // the client is gone
      }
      return outcome;
    } finally {
      outcome.bytesIn = this.reader.bytesRead;
      await this.out.end();
      outcome.bytesOut = this.out.bytes;
    }
  }

  /**
   * Runs fn (indexing, checks, ref updates: minutes for a big push, with
   * nothing to say) while an empty band-1 packet goes out every
   * keepAliveMs, as git's receive.keepAlive does, so that the client and
   * anything timing the connection know we are still at it.  Without
   * side-band there is nothing harmless to send.
   */
  private async keptAlive<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.sideband) return fn();
    const timer = setInterval(() => {
      try {
        void this.out.write(KEEPALIVE)?.catch(() => undefined);
      } catch {
        // the client is gone; fn finds out on its own
      }
    }, this.opts.keepAliveMs ?? KEEPALIVE_MS);
    try {
      return await fn();
    } finally {
      clearInterval(timer);
    }
  }

  private async readRequestOrErr(): Promise<Request | { error: string }> {
    try {
      return await readRequest(this.pkts);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      try {
        await this.out.write(errPkt(err.message));
      } catch {
        // the client is gone
      }
      return { error: err.message };
    }
  }

  /** Receives the pack, checks everything, moves refs; returns the unpack status. */
  private async execute(req: Request): Promise<string> {
    const { commands, caps } = req;
    const atomic = caps.has('atomic');
    const objectsDir = path.join(this.repo.gitDir, 'objects');
    for (const c of commands) {
      if (c.error) continue;
      c.error = pushRefnameProblem(c.ref);
      if (!c.error && c.new === ZERO_OID && c.old === ZERO_OID) c.error = 'nothing to delete';
    }
    const needPack = commands.some((c) => c.new !== ZERO_OID);
    let quarantine: Quarantine | null = null;
    let incoming: ObjectStore | null = null;
    let tx: RefTransaction | null = null;
    let committing = false;
    try {
      let pack: IndexedPack | null = null;
      cleanStale(objectsDir, this.opts.staleBefore);
      if (needPack) {
        quarantine = Quarantine.create(objectsDir);
        this.checkpoint('quarantine-created');
        try {
          const received = await this.receivePackfile(quarantine);
          pack = received.pack;
          if (pack.name) incoming = new ObjectStore(quarantine.dir);
          checkSpecialBlobs(received.special, new PushObjects(pack, incoming, this.repo.objects));
        } catch (err) {
          if (!(err instanceof PackIndexError || err instanceof FsckError)) throw err;
          this.log(`receive-pack: unpack failed: ${err.message}`);
          for (const c of commands) c.error ??= 'unpacker error';
          return err.message;
        }
      }
      const objects = new PushObjects(pack, incoming, this.repo.objects);
      this.checkCommands(commands, objects);
      this.checkpoint('checked');
      if (atomic && commands.some((c) => c.error)) {
        for (const c of commands) c.error ??= 'atomic push failure';
        return 'ok';
      }
      tx = new RefTransaction(this.repo.gitDir, { ...(this.opts.staleBefore !== undefined ? { staleBefore: this.opts.staleBefore } : {}) });
      for (const c of commands) {
        if (c.error) continue;
        c.error = await tx.prepare(c);
        if (c.error && atomic) {
          tx.release();
          for (const d of commands) d.error ??= 'atomic push failure';
          return 'ok';
        }
      }
      this.checkpoint('refs-locked');
      const going = commands.filter((c) => !c.error);
      if (quarantine && pack?.name && going.some((c) => c.new !== ZERO_OID)) {
        await quarantine.migrate(pack.name, (s) => this.checkpoint(s));
      }
      committing = true;
      const failed = await tx.commit(atomic, (s) => this.checkpoint(s));
      for (const c of going) {
        const why = failed.get(c.ref);
        if (why) c.error = why;
        this.log(`receive-pack: ${c.ref} ${c.old}..${c.new} ${why ? `refused: ${why}` : 'updated'}`);
      }
      this.checkpoint('refs-updated');
      return 'ok';
    } catch (err) {
      // A full disk (or the like) before any ref moved: the push fails as a whole and says why.
      const why = committing ? null : storageProblem(err);
      if (!why) throw err;
      this.log(`receive-pack: cannot store the push: ${(err as Error).message}`);
      for (const c of commands) c.error ??= 'unpacker error';
      return why;
    } finally {
      tx?.release();
      incoming?.close();
      quarantine?.unkeep();
      quarantine?.destroy();
    }
  }

  /** Indexes the client's pack into the quarantine, fsck'ing every object; names the .gitmodules/.gitattributes blobs seen. */
  private async receivePackfile(quarantine: Quarantine): Promise<{ pack: IndexedPack; special: SpecialBlobs }> {
    const special = newSpecialBlobs();
    const pack = await PackIndexer.run(this.reader, quarantine.packDir, {
      bases: this.repo.objects,
      check: (oid, type, data) => fsckObject(oid, type, data, special),
      ...(this.opts.maxInputBytes !== undefined ? { maxInputBytes: this.opts.maxInputBytes } : {}),
      checkpoint: (s) => this.checkpoint(s),
    });
    if (pack.appended > 0) await this.say(`completed thin pack with ${pack.appended} local object${pack.appended === 1 ? '' : 's'}\n`);
    return { pack, special };
  }

  /** Per-ref checks before anything is locked: names, HEAD, types, protection, connectivity. */
  private checkCommands(commands: Command[], objects: PushObjects): void {
    const head = this.repo.refs.head();
    let reach: Reachability | null = null;
    const reachable = (oid: string): boolean => {
      reach ??= new Reachability(new CommitGraph(this.repo.objects), this.repo.refs.list('refs/').map((r) => r.oid));
      return reach.reachable(oid);
    };
    const conn = new Connectivity(objects.pack, objects.indexed?.count ?? 0, objects.repo, reachable);
    for (const c of commands) {
      if (c.error) continue;
      if (c.new === ZERO_OID) {
        if (head.target === c.ref) c.error = 'deletion of the current branch prohibited';
      } else {
        const type = objects.typeOf(c.new);
        if (type === null) c.error = 'missing necessary objects';
        else if (type !== 'commit' && c.ref.startsWith('refs/heads/')) c.error = `trying to write non-commit object ${c.new} to branch '${c.ref}'`;
      }
      if (c.error) continue;
      try {
        c.error = protectProblem(this.opts.protect, c.ref, c.old, c.new, objects);
        if (c.error || c.new === ZERO_OID) continue;
        conn.check(c.new);
      } catch (err) {
        if (err instanceof ConnectivityError) {
          c.error = 'missing necessary objects';
        } else if (err instanceof ObjectFormatError || err instanceof ObjectCorruptError || err instanceof MissingObjectError) {
          c.error = 'bad objects';
        } else {
          throw err;
        }
        this.log(`receive-pack: ${c.ref}: ${err.message}`);
      }
    }
  }
}

/** Serves one push on `conn`; never throws for bad client input. */
export async function receivePack(repo: Repository, conn: Conn, opts: ReceivePackOptions): Promise<ReceiveOutcome> {
  return new Session(repo, conn, opts).run();
}

const STORAGE_WORDS: Record<string, string> = {
  ENOSPC: 'no space left on the server',
  EDQUOT: 'disk quota exceeded on the server',
  EFBIG: 'file too large for the server',
  EROFS: 'repository is read-only on the server',
  EIO: 'I/O error on the server',
};

/** The unpack status for a failure to store what the client sent (not the client's fault), or null. */
function storageProblem(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const words = typeof code === 'string' && Object.hasOwn(STORAGE_WORDS, code) ? STORAGE_WORDS[code] : undefined;
  return words ? `${words} (${code}); nothing was changed` : null;
}
