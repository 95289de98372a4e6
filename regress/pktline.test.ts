import t from 'tap';
import { PassThrough } from 'node:stream';
import { ByteReader } from '../src/git/byte_reader';
import { PktReader, ProtocolError, pkt, pktLine, errPkt, FLUSH, DELIM, RESPONSE_END } from '../src/git/pktline';

function readerOf(...parts: (string | Buffer)[]): PktReader {
  const s = new PassThrough();
  for (const p of parts) s.write(p);
  s.end();
  return new PktReader(new ByteReader(s));
}

t.test('encodes data and special packets', async (t) => {
  t.equal(pktLine('hello').toString(), '000ahello\n');
  t.equal(pkt('').toString(), '0004');
  t.equal(errPkt('bad\nthing').toString(), '0012ERR bad thing\n');
  t.throws(() => pkt(Buffer.alloc(65517)), RangeError);
  t.equal(pkt(Buffer.alloc(65516)).length, 65520);
});

t.test('decodes a mixed stream', async (t) => {
  const r = readerOf(pktLine('a'), FLUSH, DELIM, RESPONSE_END, pkt(''), '0009ab', 'cde');
  t.same(await r.read(), { kind: 'data', data: Buffer.from('a\n') });
  t.same(await r.read(), { kind: 'flush' });
  t.same(await r.read(), { kind: 'delim' });
  t.same(await r.read(), { kind: 'response-end' });
  t.same(await r.read(), { kind: 'data', data: Buffer.alloc(0) });
  t.same(await r.read(), { kind: 'data', data: Buffer.from('abcde') });
  t.same(await r.read(), { kind: 'eof' });
});

t.test('malformed lengths are precise errors', async (t) => {
  await t.rejects(readerOf('0003').read(), { message: /bad line length 3/ });
  await t.rejects(readerOf('ffffab').read(), { message: /bad line length 65535/ });
  await t.rejects(readerOf('zz00').read(), { message: /bad line length character: "zz00"/ });
  await t.rejects(readerOf('0010abc').read(), { message: /cut short/ });
  await t.rejects(readerOf('00').read(), { message: /truncated/ });
  await t.rejects(readerOf('0003').read(), ProtocolError);
});

t.test('raw bytes after pkt-lines are not lost', async (t) => {
  const bytes = new ByteReader((() => {
    const s = new PassThrough();
    s.end(Buffer.concat([pktLine('x'), FLUSH, Buffer.from('PACKrest')]));
    return s;
  })());
  const r = new PktReader(bytes);
  t.equal((await r.read()).kind, 'data');
  t.equal((await r.read()).kind, 'flush');
  t.equal((await bytes.readSome())!.toString(), 'PACKrest');
  t.equal(await bytes.atEnd(), true);
});

t.test('a pkt-line must arrive whole within the line timeout, however its bytes trickle', async (t) => {
  const s = new PassThrough();
  const r = new PktReader(new ByteReader(s), 300);
  s.write(pktLine('want 1'));
  t.same(await r.read(), { kind: 'data', data: Buffer.from('want 1\n') }, 'a line at once');
  const line = pktLine('want 2');
  let i = 0;
  const drip = setInterval(() => { if (i < line.length) s.write(line.subarray(i, ++i)); }, 100);
  const t0 = Date.now();
  await t.rejects(r.read(), { name: 'ProtocolError', message: /no complete pkt-line within 0.3 s/ }, 'a byte every 100 ms is cut');
  clearInterval(drip);
  const took = Date.now() - t0;
  t.ok(took >= 290 && took < 1000, `cut after ${took} ms`);
  const idle = new PktReader(new ByteReader(new PassThrough()));
  const none = await Promise.race([idle.read().then(() => 'read'), new Promise((r) => setTimeout(() => r('waiting'), 400))]);
  t.equal(none, 'waiting', 'no line timeout: the reader waits');
});
