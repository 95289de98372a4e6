/**
 * upload-pack: the serving side of clone, fetch and ls-remote, protocol v0/v1
 * (gitprotocol-pack(5)) and v2 (gitprotocol-v2(5)), following git's own
 * upload-pack.c in every observable step: the ref advertisement, want/have
 * negotiation with ACK common/ready/continue and NAK, shallow and deepen,
 * and the packfile with progress on side-band 2.
 *
 * Bad input never throws out of here: the client gets "ERR <reason>" (or a
 * band-3 message once the pack has started) and the promise resolves with
 * ok=false. A want must name an advertised tip or a commit reachable from
 * one; nothing else in the object store is ever served.
 */
import type { Readable, Writable } from 'node:stream';
import { ByteReader } from './byte_reader';
import { FLUSH, DELIM, PktReader, ProtocolError, chomp, errPkt, pktLine, MAX_PKT_LEN, type Pkt } from './pktline';
import type { Repository } from './repository';
import type { Ref } from './refs';
import { isOid, ZERO_OID } from './object';
import { CommitGraph, INFINITE_DEPTH, MissingObjectError, Negotiation, Reachability } from './revwalk';
import { ObjectWalker, type ObjectSelection } from './object_walk';
import { PackWriter } from './pack_writer';
import { Output, PackStream, SMALL_PKT_LEN } from './sideband';
import { Progress } from './progress';
import { AGENT } from './version';

export interface Conn { input: Readable; output: Writable }
export interface SessionOutcome { ok: boolean; error?: string; bytesIn: number; bytesOut: number }
export interface UploadPackOptions {
  protocol: 0 | 1 | 2;
  log?: (line: string) => void;
  /** How long one pkt-line from the client may take to arrive whole, ms (0 or absent: no limit). */
  lineTimeoutMs?: number;
}

const V0_CAPABILITIES = [
  'multi_ack', 'thin-pack', 'side-band', 'side-band-64k', 'ofs-delta', 'shallow', 'deepen-since',
  'deepen-not', 'deepen-relative', 'no-progress', 'include-tag', 'multi_ack_detailed',
  'allow-tip-sha1-in-want', 'allow-reachable-sha1-in-want', 'no-done',
];

/** More want/have/shallow lines than this in one request is an attack, not a fetch. */
const MAX_LINES = 200000;

/** The client went away; nothing more can be said to it. */
class Hangup extends Error {
  override name = 'Hangup';
}

/** State of one fetch (a v0 session, or one v2 fetch command). */
interface FetchRequest {
  wants: string[];
  wantSet: Set<string>;
  haves: string[];
  shallows: string[];
  depth: number;
  deepenSince: number | null;
  deepenNot: string[];
  deepenRelative: boolean;
  thin: boolean;
  ofsDelta: boolean;
  noProgress: boolean;
  includeTag: boolean;
  done: boolean;
  waitForDone: boolean;
  /** 0 none, else the largest packet (v0 side-band: 1000, side-band-64k and v2: 65520). */
  sideband: number;
  multiAck: 0 | 1 | 2;
  noDone: boolean;
}

function newRequest(): FetchRequest {
  return {
    wants: [], wantSet: new Set(), haves: [], shallows: [], depth: 0, deepenSince: null, deepenNot: [],
    deepenRelative: false, thin: false, ofsDelta: false, noProgress: false, includeTag: false,
    done: false, waitForDone: false, sideband: 0, multiAck: 0, noDone: false,
  };
}

/** What the shallow negotiation decided for the object walk. */
interface ShallowPlan {
  grafts: Set<string>;
  extraWants: string[];
  extraEdges: string[];
}

class UploadPackSession {
  private readonly bytes: ByteReader;
  private readonly pkts: PktReader;
  private readonly out: Output;
  private readonly graph: CommitGraph;
  private packStarted: PackStream | null = null;
  private summary = '';

  constructor(private readonly repo: Repository, private readonly conn: Conn, private readonly opts: UploadPackOptions) {
    this.bytes = new ByteReader(conn.input);
    this.pkts = new PktReader(this.bytes, opts.lineTimeoutMs ?? 0);
    this.out = new Output(conn.output);
    this.graph = new CommitGraph(repo.objects);
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private async send(...bufs: Buffer[]): Promise<void> {
    try {
      for (const b of bufs) await this.out.write(b);
    } catch (err) {
      throw new Hangup((err as Error).message);
    }
  }

  private async line(text: string): Promise<void> {
    await this.send(pktLine(text));
  }

  private async read(): Promise<Pkt> {
    return this.pkts.read();
  }

  async run(): Promise<SessionOutcome> {
    let ok = true;
    let error: string | undefined;
    try {
      if (this.opts.protocol === 2) await this.serveV2();
      else await this.serveV0();
    } catch (err) {
      ok = false;
      error = this.describe(err);
      // Anything but the client's fault is a bug: keep where it happened.
      if (!(err instanceof ProtocolError || err instanceof Hangup)) this.log(`upload-pack: internal error: ${(err as Error).stack ?? error}`);
      if (!(err instanceof Hangup)) await this.reportError(error);
    } finally {
      await this.out.end();
      this.conn.input.pause();
    }
    this.log(`upload-pack v${this.opts.protocol}: ${ok ? 'ok' : 'failed: ' + error}${this.summary}`);
    return { ok, ...(error !== undefined ? { error } : {}), bytesIn: this.bytes.bytesRead, bytesOut: this.out.bytes };
  }

  private describe(err: unknown): string {
    if (err instanceof ProtocolError || err instanceof Hangup) return err.message;
    if (err instanceof MissingObjectError) return `upload-pack: ${err.message} (repository corrupt?)`;
    if (err instanceof Error) return `upload-pack: ${err.message}`;
    return `upload-pack: ${String(err)}`;
  }

  private async reportError(msg: string): Promise<void> {
    try {
      if (this.packStarted) {
        await this.packStarted.flush().catch(() => undefined);
        await this.packStarted.error(msg);
      } else {
        await this.out.write(errPkt(msg));
      }
    } catch {
      /* the client is gone */
    }
  }

  // ------------------------------------------------------------------ refs

  /** Every ref we serve, HEAD first when it resolves. */
  private refsNow(): { head: { target: string | null; oid: string | null }; refs: Ref[] } {
    return { head: this.repo.refs.head(), refs: this.repo.refs.list() };
  }

  /** Objects a want may name directly: ref values and what tags peel to. */
  private static tips(head: { oid: string | null }, refs: Ref[]): Set<string> {
    const tips = new Set<string>();
    if (head.oid) tips.add(head.oid);
    for (const r of refs) {
      tips.add(r.oid);
      if (r.peeled) tips.add(r.peeled);
    }
    return tips;
  }

  private async advertiseV0(): Promise<Set<string>> {
    const { head, refs } = this.refsNow();
    const caps = [...V0_CAPABILITIES];
    if (head.target) caps.push(`symref=HEAD:${head.target}`);
    caps.push('object-format=sha1', `agent=${AGENT}`);
    if (this.opts.protocol === 1) await this.line('version 1');
    // Line by line, not gathered first: with a million refs, every copy held costs a hundred MB.
    let first = true;
    const say = async (l: string): Promise<void> => {
      await this.line(first ? `${l}\0${caps.join(' ')}` : l);
      first = false;
    };
    if (head.oid) {
      await say(`${head.oid} HEAD`);
      const peeled = this.repo.refs.peel(head.oid);
      if (peeled && peeled !== head.oid) await say(`${peeled} HEAD^{}`);
    }
    for (const r of refs) {
      await say(`${r.oid} ${r.name}`);
      if (r.peeled) await say(`${r.peeled} ${r.name}^{}`);
    }
    if (first) await say(`${ZERO_OID} capabilities^{}`);
    await this.send(FLUSH);
    return UploadPackSession.tips(head, refs);
  }

  // ------------------------------------------------------------------ v0/v1

  private async serveV0(): Promise<void> {
    const tips = await this.advertiseV0();
    const req = newRequest();
    const first = await this.read();
    if (first.kind === 'eof') return; // ls-remote without a goodbye
    await this.receiveNeeds(req, first, tips);
    const plan = await this.shallowPlanV0(req, tips);
    if (req.wants.length === 0) return;
    if (await this.bytes.atEnd()) return;
    const neg = new Negotiation(this.graph, req.wants);
    await this.negotiateV0(req, neg);
    await this.sendPack(req, neg.haves, plan);
  }

  private async receiveNeeds(req: FetchRequest, first: Pkt, tips: Set<string>): Promise<void> {
    let pkt = first;
    let lines = 0;
    for (;; pkt = await this.read()) {
      if (pkt.kind === 'flush') break;
      if (pkt.kind === 'eof') throw new Hangup('client hung up during the want list');
      if (pkt.kind !== 'data') throw new ProtocolError(`protocol error: unexpected ${pkt.kind} packet in the want list`);
      if (++lines > MAX_LINES) throw new ProtocolError('upload-pack: too many lines in the want list');
      const line = chomp(pkt.data);
      if (this.parseShallowArg(req, line)) continue;
      if (line.startsWith('filter ')) throw new ProtocolError('upload-pack: filtering capability not negotiated');
      const m = /^want ([0-9a-f]{40})(?: (.*))?$/.exec(line);
      if (!m) throw new ProtocolError(`upload-pack: protocol error, expected to get object ID, not '${line.slice(0, 200)}'`);
      if (m[2] !== undefined) this.parseV0Features(req, m[2]);
      this.addWant(req, m[1]!);
    }
    this.checkWants(req, tips);
  }

  private parseV0Features(req: FetchRequest, features: string): void {
    const f = new Set(features.split(' '));
    if (f.has('deepen-relative')) req.deepenRelative = true;
    if (f.has('multi_ack_detailed')) req.multiAck = 2;
    else if (f.has('multi_ack')) req.multiAck = 1;
    if (f.has('no-done')) req.noDone = true;
    if (f.has('thin-pack')) req.thin = true;
    if (f.has('ofs-delta')) req.ofsDelta = true;
    if (f.has('side-band-64k')) req.sideband = MAX_PKT_LEN;
    else if (f.has('side-band')) req.sideband = SMALL_PKT_LEN;
    if (f.has('no-progress')) req.noProgress = true;
    if (f.has('include-tag')) req.includeTag = true;
  }

  private addWant(req: FetchRequest, oid: string): void {
    if (!this.repo.objects.has(oid)) throw new ProtocolError(`upload-pack: not our ref ${oid}`);
    if (!req.wantSet.has(oid)) {
      req.wantSet.add(oid);
      req.wants.push(oid);
    }
  }

  /** Wants must be tips, or commits reachable from tips: never any other object in the store. */
  private checkWants(req: FetchRequest, tips: Set<string>): void {
    let reach: Reachability | null = null;
    for (const w of req.wants) {
      if (tips.has(w)) continue;
      const c = this.graph.lookup(w);
      reach ??= new Reachability(this.graph, [...tips]);
      if (!c || !reach.reachable(w)) throw new ProtocolError(`upload-pack: not our ref ${w}`);
    }
  }

  /** shallow, deepen, deepen-since, deepen-not, deepen-relative (v0 and v2 alike). */
  private parseShallowArg(req: FetchRequest, line: string): boolean {
    if (line.startsWith('shallow ')) {
      const oid = line.slice(8);
      if (!isOid(oid)) throw new ProtocolError(`upload-pack: invalid shallow line: ${line.slice(0, 200)}`);
      const h = this.repo.objects.header(oid);
      if (!h) return true; // a shallow commit we do not have: git ignores it too
      if (h.type !== 'commit') throw new ProtocolError(`upload-pack: invalid shallow object ${oid}`);
      if (!req.shallows.includes(oid)) req.shallows.push(oid);
      return true;
    }
    if (line.startsWith('deepen ')) {
      const arg = line.slice(7);
      const n = /^[0-9]+$/.test(arg) ? Number(arg) : NaN;
      if (!(n > 0)) throw new ProtocolError(`upload-pack: invalid deepen: ${line.slice(0, 200)}`);
      req.depth = Math.min(n, INFINITE_DEPTH);
      return true;
    }
    if (line.startsWith('deepen-since ')) {
      const arg = line.slice(13);
      if (!/^[0-9]+$/.test(arg)) throw new ProtocolError(`upload-pack: invalid deepen-since: ${line.slice(0, 200)}`);
      req.deepenSince = Number(arg);
      return true;
    }
    if (line.startsWith('deepen-not ')) {
      const name = line.slice(11);
      const oid = this.repo.refs.resolve(name);
      if (!oid) throw new ProtocolError(`upload-pack: ambiguous deepen-not: ${line.slice(0, 200)}`);
      req.deepenNot.push(oid);
      return true;
    }
    if (line === 'deepen-relative') {
      req.deepenRelative = true;
      return true;
    }
    return false;
  }

  /** git's send_shallow_list() and friends; writes the shallow/unshallow lines. */
  private async shallowPlan(req: FetchRequest, tips: Set<string>, write: (l: string) => Promise<void>): Promise<{ plan: ShallowPlan; sent: boolean }> {
    const plan: ShallowPlan = { grafts: new Set(), extraWants: [], extraEdges: [] };
    const revList = req.deepenSince !== null || req.deepenNot.length > 0;
    if (req.depth > 0 && revList) throw new ProtocolError('upload-pack: deepen and deepen-since (or deepen-not) cannot be used together');
    const clientShallow = new Set(req.shallows);
    let shallow: string[] = [];
    let notShallow = new Set<string>();
    if (req.depth > 0) {
      if (req.depth === INFINITE_DEPTH) {
        notShallow = new Set(req.shallows);
      } else if (req.deepenRelative) {
        const reach = new Reachability(this.graph, [...tips]);
        const heads = req.shallows.filter((s) => tips.has(s) || reach.reachable(s));
        ({ shallow, notShallow } = this.graph.shallowByDepth(heads, req.depth + 1));
      } else {
        ({ shallow, notShallow } = this.graph.shallowByDepth(req.wants, req.depth));
      }
    } else if (revList) {
      const r = this.graph.shallowByRevList(req.wants, {
        ...(req.deepenSince !== null ? { since: req.deepenSince } : {}),
        not: req.deepenNot,
      });
      if (!r) throw new ProtocolError('upload-pack: no commits selected for shallow requests');
      ({ shallow, notShallow } = r);
    } else {
      for (const s of req.shallows) plan.grafts.add(s);
      return { plan, sent: false };
    }
    for (const s of shallow) {
      if (clientShallow.has(s) || notShallow.has(s)) continue;
      await write(`shallow ${s}`);
      plan.grafts.add(s);
    }
    for (const s of req.shallows) {
      if (notShallow.has(s)) {
        await write(`unshallow ${s}`);
        plan.extraWants.push(...this.graph.get(s).parents);
        plan.extraEdges.push(s);
      }
      plan.grafts.add(s); // the client's view of history ends there
    }
    return { plan, sent: true };
  }

  private async shallowPlanV0(req: FetchRequest, tips: Set<string>): Promise<ShallowPlan> {
    if (req.depth === 0 && req.deepenSince === null && req.deepenNot.length === 0 && req.shallows.length === 0) {
      return { grafts: new Set(), extraWants: [], extraEdges: [] };
    }
    const { plan, sent } = await this.shallowPlan(req, tips, (l) => this.line(l));
    if (sent) await this.send(FLUSH);
    return plan;
  }

  /** git's get_common_commits(): have lines until "done" (or "ready" with no-done). */
  private async negotiateV0(req: FetchRequest, neg: Negotiation): Promise<void> {
    let gotCommon = false;
    let gotOther = false;
    let sentReady = false;
    let last = '';
    let lines = 0;
    for (;;) {
      const pkt = await this.read();
      if (pkt.kind === 'eof') throw new Hangup('client hung up during negotiation');
      if (pkt.kind !== 'data') {
        if (pkt.kind !== 'flush') throw new ProtocolError(`protocol error: unexpected ${pkt.kind} packet during negotiation`);
        if (req.multiAck === 2 && gotCommon && !gotOther && neg.okToGiveUp()) {
          sentReady = true;
          await this.line(`ACK ${last} ready`);
        }
        if (neg.haves.length === 0 || req.multiAck) await this.line('NAK');
        if (req.noDone && sentReady) {
          await this.line(`ACK ${last}`);
          return;
        }
        gotCommon = false;
        gotOther = false;
        continue;
      }
      if (++lines > MAX_LINES) throw new ProtocolError('upload-pack: too many have lines');
      const line = chomp(pkt.data);
      if (line.startsWith('have ')) {
        const oid = line.slice(5, 45);
        if (!isOid(oid)) throw new ProtocolError(`upload-pack: expected SHA1 object, got '${line.slice(5, 200)}'`);
        const r = neg.gotOid(oid);
        if (r === -1) {
          gotOther = true;
          if (req.multiAck && neg.okToGiveUp()) {
            if (req.multiAck === 2) {
              sentReady = true;
              await this.line(`ACK ${oid} ready`);
            } else {
              await this.line(`ACK ${oid} continue`);
            }
          }
        } else {
          gotCommon = true;
          last = oid;
          if (req.multiAck === 2) await this.line(`ACK ${oid} common`);
          else if (req.multiAck) await this.line(`ACK ${oid} continue`);
          else if (neg.haves.length === 1) await this.line(`ACK ${oid}`);
        }
        continue;
      }
      if (line === 'done') {
        if (neg.haves.length > 0) {
          if (req.multiAck) await this.line(`ACK ${last}`);
          return;
        }
        await this.line('NAK');
        return;
      }
      throw new ProtocolError(`upload-pack: expected SHA1 list, got '${line.slice(0, 200)}'`);
    }
  }

  // ------------------------------------------------------------------ pack

  private async sendPack(req: FetchRequest, haves: string[], plan: ShallowPlan): Promise<void> {
    const stream = new PackStream(this.out, req.sideband);
    this.packStarted = stream;
    const say = req.noProgress ? null : (text: string) => { void stream.progress(text).catch(() => undefined); };
    const enumerating = new Progress(say, 'Enumerating objects');
    const walker = new ObjectWalker(this.repo.objects, enumerating);
    const sel: ObjectSelection = walker.walk({
      wants: [...req.wants, ...plan.extraWants],
      haves: [...haves, ...plan.extraEdges],
      grafts: plan.grafts,
    });
    if (req.includeTag) walker.includeTags(this.repo.refs.list('refs/tags/'));
    enumerating.done(sel.count);
    new Progress(say, 'Counting objects', sel.count).done(sel.count);
    const writing = new Progress(say, 'Writing objects', sel.count);
    const writer = new PackWriter(this.repo.objects, sel, stream, { ofsDelta: req.ofsDelta, thin: req.thin, progress: writing });
    let stats;
    try {
      stats = await writer.write();
    } catch (err) {
      if (/connection closed|EPIPE|ECONNRESET/.test((err as Error).message)) throw new Hangup((err as Error).message);
      throw err;
    }
    writing.done(sel.count);
    if (say) {
      say(`Total ${stats.total} (delta ${stats.deltas}), reused ${stats.reused} (delta ${stats.reusedDeltas}), pack-reused ${stats.packReused}\n`);
    }
    if (req.sideband) await this.send(FLUSH);
    this.packStarted = null;
    this.summary = `; wants ${req.wants.length}, haves ${haves.length}, ${stats.total} objects, ${stats.bytes} bytes` +
      `${sel.bitmapUsed ? ', bitmap' : ''}`;
  }

  // ------------------------------------------------------------------ v2

  private async serveV2(): Promise<void> {
    await this.line('version 2');
    await this.line(`agent=${AGENT}`);
    await this.line('ls-refs=unborn');
    await this.line('fetch=shallow wait-for-done');
    await this.line('server-option');
    await this.line('object-format=sha1');
    await this.send(FLUSH);
    while (await this.processRequest()) { /* one command at a time */ }
  }

  /** One v2 request: capability lines, an optional delim, arguments, flush. False at the end of the session. */
  private async processRequest(): Promise<boolean> {
    let command: string | null = null;
    let keys = 0;
    let argsFollow = false;
    for (;;) {
      const pkt = await this.read();
      if (pkt.kind === 'eof') {
        if (keys === 0) return false;
        throw new Hangup('client hung up in the middle of a request');
      }
      if (pkt.kind === 'flush') {
        if (keys === 0) return false; // the client says goodbye
        break;
      }
      if (pkt.kind === 'delim') {
        argsFollow = true;
        break;
      }
      if (pkt.kind === 'response-end') throw new ProtocolError('protocol error: unexpected response-end packet');
      keys++;
      const line = chomp(pkt.data);
      if (line.startsWith('command=')) {
        const name = line.slice(8);
        if (command) throw new ProtocolError(`command '${name}' requested after already requesting command '${command}'`);
        if (name !== 'ls-refs' && name !== 'fetch') throw new ProtocolError(`invalid command '${name.slice(0, 200)}'`);
        command = name;
      } else if (line.startsWith('object-format=')) {
        if (line !== 'object-format=sha1') throw new ProtocolError(`mismatched object format: ${line.slice(14, 100)} (this server uses sha1)`);
      } else if (!/^(agent|server-option|session-id)=/.test(line) && line !== 'server-option') {
        throw new ProtocolError(`unknown capability '${line.slice(0, 200)}'`);
      }
    }
    if (!command) throw new ProtocolError('no command requested');
    const args: string[] = [];
    if (argsFollow) {
      for (;;) {
        const pkt = await this.read();
        if (pkt.kind === 'flush') break;
        if (pkt.kind === 'eof') throw new Hangup('client hung up in the middle of a request');
        if (pkt.kind !== 'data') throw new ProtocolError(`expected flush after ${command} arguments`);
        if (args.length >= MAX_LINES) throw new ProtocolError(`too many ${command} arguments`);
        args.push(chomp(pkt.data));
      }
    }
    if (command === 'ls-refs') await this.lsRefs(args);
    else await this.fetchV2(args);
    return true;
  }

  private async lsRefs(args: string[]): Promise<void> {
    let peel = false;
    let symrefs = false;
    let unborn = false;
    const prefixes: string[] = [];
    for (const a of args) {
      if (a === 'peel') peel = true;
      else if (a === 'symrefs') symrefs = true;
      else if (a === 'unborn') unborn = true;
      else if (a.startsWith('ref-prefix ')) prefixes.push(a.slice(11));
      else throw new ProtocolError(`unexpected line: '${a.slice(0, 200)}'`);
    }
    const match = (name: string) => prefixes.length === 0 || prefixes.some((p) => name.startsWith(p));
    let count = 0;
    const say = async (l: string): Promise<void> => { count++; await this.line(l); };
    const head = this.repo.refs.head();
    if (match('HEAD')) {
      if (head.oid) {
        let l = `${head.oid} HEAD`;
        if (symrefs && head.target) l += ` symref-target:${head.target}`;
        const peeled = peel ? this.repo.refs.peel(head.oid) : null;
        if (peeled && peeled !== head.oid) l += ` peeled:${peeled}`;
        await say(l);
      } else if (unborn && symrefs && head.target) {
        await say(`unborn HEAD symref-target:${head.target}`);
      }
    }
    for (const r of this.repo.refs.list()) {
      if (!match(r.name)) continue;
      let l = `${r.oid} ${r.name}`;
      if (symrefs && r.symref) l += ` symref-target:${r.symref}`;
      if (peel && r.peeled) l += ` peeled:${r.peeled}`;
      await say(l);
    }
    await this.send(FLUSH);
    this.summary = `; ls-refs ${count} refs`;
  }

  private async fetchV2(args: string[]): Promise<void> {
    const req = newRequest();
    req.sideband = MAX_PKT_LEN;
    const { head, refs } = this.refsNow();
    const tips = UploadPackSession.tips(head, refs);
    for (const a of args) {
      const w = /^want ([0-9a-f]{40})$/.exec(a);
      if (w) { this.addWant(req, w[1]!); continue; }
      if (a.startsWith('want ')) throw new ProtocolError(`upload-pack: protocol error, expected to get oid, not '${a.slice(0, 200)}'`);
      if (a.startsWith('have ')) {
        const oid = a.slice(5);
        if (!isOid(oid)) throw new ProtocolError(`upload-pack: expected SHA1 object, got '${oid.slice(0, 200)}'`);
        req.haves.push(oid);
        continue;
      }
      switch (a) {
        case 'thin-pack': req.thin = true; continue;
        case 'ofs-delta': req.ofsDelta = true; continue;
        case 'no-progress': req.noProgress = true; continue;
        case 'include-tag': req.includeTag = true; continue;
        case 'done': req.done = true; continue;
        case 'wait-for-done': req.waitForDone = true; continue;
      }
      if (this.parseShallowArg(req, a)) continue;
      throw new ProtocolError(`unexpected line: '${a.slice(0, 200)}'`);
    }
    this.checkWants(req, tips);
    if (req.wants.length === 0 && !req.waitForDone) return; // nothing wanted: no response at all
    const neg = new Negotiation(this.graph, req.wants);
    if (req.haves.length > 0) {
      const common: string[] = [];
      for (const h of req.haves) {
        if (!this.repo.objects.has(h)) continue;
        common.push(h);
        neg.gotOid(h);
      }
      if (!req.done) {
        await this.line('acknowledgments');
        if (common.length === 0) await this.line('NAK');
        for (const c of common) await this.line(`ACK ${c}`);
        if (!req.waitForDone && neg.okToGiveUp()) {
          await this.line('ready');
          await this.send(DELIM);
        } else {
          await this.send(FLUSH);
          return;
        }
      }
    }
    let plan: ShallowPlan = { grafts: new Set(), extraWants: [], extraEdges: [] };
    if (req.depth > 0 || req.deepenSince !== null || req.deepenNot.length > 0 || req.shallows.length > 0) {
      await this.line('shallow-info');
      ({ plan } = await this.shallowPlan(req, tips, (l) => this.line(l)));
      await this.send(DELIM);
    }
    await this.line('packfile');
    await this.sendPack(req, neg.haves, plan);
  }
}

/** Serves one upload-pack session on conn; never throws for client input. */
export function uploadPack(repo: Repository, conn: Conn, opts: UploadPackOptions): Promise<SessionOutcome> {
  return new UploadPackSession(repo, conn, opts).run();
}
