/**
 * gotd.sock framing: the client sends one JSON line and the daemon answers
 * with one JSON line; after a {"ok":true} reply the Git protocol follows on
 * the same socket.  The client sends nothing more until the daemon has
 * spoken, so no client byte is in flight while the socket changes hands.
 */
import type { Duplex } from 'node:stream';

export class LineError extends Error {
  override name = 'LineError';
}

/** One line as bytes on the wire. */
export function encodeLine(msg: unknown): Buffer {
  return Buffer.from(JSON.stringify(msg) + '\n', 'utf8');
}

/**
 * Reads up to and including the first "\n" (at most max bytes, within
 * timeoutMs; 0 = no timeout).  Leaves the stream paused; bytes after the
 * newline come back as rest.
 */
export function readLine(stream: Duplex, max: number, timeoutMs: number): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = timeoutMs > 0 ? setTimeout(() => finish(new LineError('timed out waiting for the request')), timeoutMs) : null;

    function finish(err: Error | null, line?: string, rest?: Buffer): void {
      if (timer) clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (err) reject(err); else resolve({ line: line!, rest: rest! });
    }
    function onData(b: Buffer): void {
      const nl = b.indexOf(0x0a);
      if (nl >= 0 && size + nl + 1 <= max) {
        chunks.push(b.subarray(0, nl));
        finish(null, Buffer.concat(chunks).toString('utf8'), b.subarray(nl + 1));
        return;
      }
      size += b.length;
      if (size >= max || nl >= 0) { finish(new LineError(`request longer than ${max} bytes`)); return; }
      chunks.push(b);
    }
    function onEnd(): void { finish(new LineError('connection closed before a complete line')); }
    function onError(e: Error): void { finish(new LineError(`connection error: ${e.message}`)); }

    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** JSON.parse that returns undefined instead of throwing. */
export function parseJson(text: string): unknown {
  try { return JSON.parse(text); } catch { return undefined; }
}
