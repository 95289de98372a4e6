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
