/**
 * pkt-line framing (gitprotocol-common(5)): four hex digits of length
 * (including themselves), then the payload; 0000 flush, 0001 delim and
 * 0002 response-end are the special packets of protocol v2.
 */
import { ReadTimeout, type ByteReader } from './byte_reader';

/** Largest packet git sends or accepts: LARGE_PACKET_MAX. */
export const MAX_PKT_LEN = 65520;
export const MAX_PKT_DATA = MAX_PKT_LEN - 4;

export const FLUSH = Buffer.from('0000');
export const DELIM = Buffer.from('0001');
export const RESPONSE_END = Buffer.from('0002');

/** Bad input from the peer; the message is fit to send back in an ERR packet. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export type Pkt =
  | { kind: 'data'; data: Buffer }
  | { kind: 'flush' }
  | { kind: 'delim' }
  | { kind: 'response-end' }
  | { kind: 'eof' };

const HEX = /^[0-9a-f]{4}$/;

/** Encodes one data packet. Strings get no newline added. */
export function pkt(payload: string | Buffer): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (data.length > MAX_PKT_DATA) throw new RangeError(`pkt-line payload of ${data.length} bytes exceeds ${MAX_PKT_DATA}`);
  const out = Buffer.allocUnsafe(data.length + 4);
  out.write((data.length + 4).toString(16).padStart(4, '0'), 0, 'latin1');
  data.copy(out, 4);
  return out;
}

/** A text packet terminated by "\n", as git writes them. */
export function pktLine(text: string): Buffer {
  return pkt(text + '\n');
}

/** An ERR packet (the client prints "remote error: <reason>"). */
export function errPkt(reason: string): Buffer {
  return pktLine('ERR ' + reason.replace(/[\r\n]+/g, ' ').slice(0, 1000));
}

/** Parses the four length bytes; throws a ProtocolError naming what is wrong. */
export function parseLength(head: Buffer): number {
  const text = head.toString('latin1');
  if (!HEX.test(text.toLowerCase())) {
    throw new ProtocolError(`protocol error: bad line length character: ${JSON.stringify(text)}`);
  }
  return parseInt(text, 16);
}

/** Reads pkt-lines from a ByteReader, enforcing the length rules. */
export class PktReader {
  /**
   * lineTimeoutMs: how long one pkt-line may take to arrive whole (0: no
   * limit).  A client that sends a byte now and then is never idle, but it
   * is cut here.
   */
  constructor(readonly bytes: ByteReader, private readonly lineTimeoutMs = 0) {}

  async read(): Promise<Pkt> {
    if (this.lineTimeoutMs === 0) return this.readLine(0);
    try {
      return await this.readLine(Date.now() + this.lineTimeoutMs);
    } catch (err) {
      if (err instanceof ReadTimeout) throw new ProtocolError(`protocol error: no complete pkt-line within ${this.lineTimeoutMs / 1000} s`);
      throw err;
    }
  }

  private async readLine(until: number): Promise<Pkt> {
    const head = await this.bytes.readExact(4, until);
    if (head === null) {
      if (this.bytes.available > 0) throw new ProtocolError('protocol error: truncated pkt-line length');
      return { kind: 'eof' };
    }
    const len = parseLength(head);
    switch (len) {
      case 0: return { kind: 'flush' };
      case 1: return { kind: 'delim' };
      case 2: return { kind: 'response-end' };
      case 3: throw new ProtocolError('protocol error: bad line length 3');
    }
    if (len > MAX_PKT_LEN) throw new ProtocolError(`protocol error: bad line length ${len} (over ${MAX_PKT_LEN})`);
    const data = len === 4 ? Buffer.alloc(0) : await this.bytes.readExact(len - 4, until);
    if (data === null) throw new ProtocolError(`protocol error: pkt-line of length ${len} cut short`);
    return { kind: 'data', data };
  }
}

/** Payload as UTF-8 text without its trailing newline. */
export function chomp(data: Buffer): string {
  const end = data.length > 0 && data[data.length - 1] === 0x0a ? data.length - 1 : data.length;
  return data.toString('utf8', 0, end);
}
