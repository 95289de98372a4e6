/**
 * The WebSocket front's small parts on their own: the request-head
 * reader and parser, Basic credentials, X-Forwarded-For behind trusted
 * proxies, the token bucket, and Git's byte stream over a real WebSocket
 * pair (end marker, close, backpressure).
 */
import t from 'tap';
import * as http from 'node:http';
import * as net from 'node:net';
import { PassThrough } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { RateLimiter, rateKey } from '../src/gotd/rate';
import { HeadError, MAX_HEAD, parseHead, readHead } from '../src/gotd/http_head';
import { acceptFor, basicCredentials, clientAddress, webRequest } from '../src/gotd/web_request';
import { gitStream } from '../src/ipc/ws_stream';

const head = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The HTTP status a HeadError thrown by f carries (0: nothing thrown). */
function statusOf(f: () => unknown): number {
  try { f(); return 0; } catch (e) { return e instanceof HeadError ? e.status : -1; }
}
async function rejectedWith(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { return e instanceof HeadError ? e.status : -1; }
}

t.test('parseHead: strict HTTP/1.x request heads', async (t) => {
  const h = parseHead(head('GET /a/b.git?service=git-upload-pack HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n'));
  t.equal(h.method, 'GET');
  t.equal(h.target, '/a/b.git?service=git-upload-pack');
  t.same(h.fields.get('x-a'), ['1', '2']);
  for (const bad of [
    'GET /x HTTP/2\r\n\r\n', 'get /x HTTP/1.1\r\n\r\n', 'GET x HTTP/1.1\r\n\r\n', 'GET http://h/x HTTP/1.1\r\n\r\n',
    'GET /x HTTP/1.1\r\nNo-Colon\r\n\r\n', 'GET /x HTTP/1.1\r\n: empty\r\n\r\n', 'GET /x HTTP/1.1\r\nA: \x01\r\n\r\n',
    'GET /x HTTP/1.1\r\nA: 1\r\n  fold\r\n\r\n', 'GET /x HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n', 'GET /x HTTP/1.1\r\nA : 1\r\n\r\n',
  ]) {
    t.throws(() => parseHead(head(bad)), HeadError, JSON.stringify(bad));
  }
});

t.test('readHead: up to the blank line, bounded, rest kept', async (t) => {
  const s = new PassThrough();
  const p = readHead(s, MAX_HEAD, 1000);
  s.write('GET / HTTP/1.1\r\nA: 1\r');
  s.write('\n\r');
  s.write('\nafter');
  const r = await p;
  t.equal(r.head.toString(), 'GET / HTTP/1.1\r\nA: 1\r\n\r\n');
  t.equal(r.rest.toString(), 'after');

  const big = new PassThrough();
  const q = readHead(big, 100, 1000);
  big.write('GET / HTTP/1.1\r\n' + 'A: x\r\n'.repeat(30));
  t.equal(await rejectedWith(q), 431);

  const slow = new PassThrough();
  t.equal(await rejectedWith(readHead(slow, 100, 50)), 408);
});

t.test('Basic credentials', async (t) => {
  const with_ = (v: string): ReturnType<typeof basicCredentials> => basicCredentials(parseHead(head(`GET / HTTP/1.1\r\nAuthorization: ${v}\r\n\r\n`)));
  t.same(with_(`Basic ${Buffer.from('alice:p:w ö').toString('base64')}`), { user: 'alice', password: 'p:w ö' });
  t.same(with_(`basic ${Buffer.from('bob:').toString('base64')}`), { user: 'bob', password: '' });
  t.equal(basicCredentials(parseHead(head('GET / HTTP/1.1\r\n\r\n'))), null, 'none: anonymous');
  for (const bad of ['Bearer x', 'Basic', 'Basic !!', `Basic ${Buffer.from(':pw').toString('base64')}`, `Basic ${Buffer.from('nocolon').toString('base64')}`,
    `Basic ${Buffer.from('a\u0001b:pw').toString('base64')}`]) {
    t.equal(with_(bad), 'bad', bad);
  }
  t.equal(basicCredentials(parseHead(head(`GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\nAuthorization: Basic YTpi\r\n\r\n`))), 'bad', 'twice');
});

t.test('the request: repository, service, protocol, upgrade', async (t) => {
  const up = 'Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const r = webRequest(parseHead(head(`GET /team/a%20b.git?service=git-receive-pack HTTP/1.1\r\nGit-Protocol: version=2\r\n${up}\r\n`)), '10.0.0.1', null);
  t.same(r, { service: 'git-receive-pack', repo: 'team/a b.git', protocol: 'version=2', user: null, password: '', address: '10.0.0.1', accept: 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' });
  t.equal(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'RFC 6455 sample');
  t.equal(webRequest(parseHead(head(`GET /x HTTP/1.1\r\n\r\n`)), 'a', null).accept, null, 'not an upgrade');
  t.equal(webRequest(parseHead(head(`GET /x HTTP/1.1\r\n\r\n`)), 'a', null).service, 'git-upload-pack', 'no service: a read');
  t.equal(statusOf(() => webRequest(parseHead(head(`GET /x?service=git-upload-archive HTTP/1.1\r\n\r\n`)), 'a', null)), 400);
  t.equal(statusOf(() => webRequest(parseHead(head(`GET /x?service=git-upload-pack&service=git-receive-pack HTTP/1.1\r\n\r\n`)), 'a', null)), 400);
  t.equal(statusOf(() => webRequest(parseHead(head(`PUT /x HTTP/1.1\r\n\r\n`)), 'a', null)), 405);
  t.equal(statusOf(() => webRequest(parseHead(head(`GET /%zz HTTP/1.1\r\n\r\n`)), 'a', null)), 400);
});

t.test('X-Forwarded-For counts only from trusted proxies', async (t) => {
  const proxies = new net.BlockList();
  proxies.addAddress('127.0.0.1');
  proxies.addSubnet('10.0.0.0', 8);
  const h = parseHead(head('GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.7, 10.1.1.1\r\n\r\n'));
  t.equal(clientAddress(h, '203.0.113.5', proxies), '203.0.113.5', 'an untrusted peer: its own address');
  t.equal(clientAddress(h, '127.0.0.1', proxies), '192.0.2.7', 'the last hop that is not a trusted proxy');
  t.equal(clientAddress(h, '127.0.0.1', null), '127.0.0.1', 'no trusted_proxies: ignored');
  t.equal(clientAddress(parseHead(head('GET / HTTP/1.1\r\n\r\n')), '127.0.0.1', proxies), '127.0.0.1', 'no header');
  t.equal(statusOf(() => clientAddress(parseHead(head('GET / HTTP/1.1\r\nX-Forwarded-For: junk\r\n\r\n')), '127.0.0.1', proxies)), 400);
});

t.test('token bucket per address, IPv6 per /64', async (t) => {
  let now = 0;
  const r = new RateLimiter(() => ({ count: 3, perMs: 60_000 }), () => now);
  t.same([r.take('a'), r.take('a'), r.take('a')], [0, 0, 0], 'a full bucket');
  t.equal(r.take('a'), 20, 'then: seconds until the next token');
  t.equal(r.take('b'), 0, 'another address is not affected');
  now += 20_000;
  t.equal(r.take('a'), 0, 'refilled');
  r.charge('a', 100);
  t.equal(r.take('a'), 80, 'a charge leaves at most one unit of debt');
  now += 10 * 60_000;
  r.sweep();
  t.equal(r.size, 0, 'full buckets are forgotten');
  t.equal(rateKey('2001:db8:1:2:3:4:5:6'), rateKey('2001:db8:1:2::9'));
  t.not(rateKey('2001:db8:1:2::1'), rateKey('2001:db8:1:3::1'));
  t.equal(rateKey('192.0.2.1'), '192.0.2.1');
});

t.test('Git bytes over a real WebSocket: end marker, close, backpressure', async (t) => {
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { wss.close(); server.close(); });
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => {
    wss.once('connection', (ws) => {
      const s = gitStream(ws, { onEnd: 'close' });
      const chunks: Buffer[] = [];
      s.on('data', (b: Buffer) => chunks.push(b));
      // The client's end marker ends what the server reads; the server still answers, then closes.
      s.on('end', () => { s.end(Buffer.alloc(300_000, 7)); resolve(Buffer.concat(chunks)); });
    });
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  await new Promise((r) => ws.once('open', r));
  const c = gitStream(ws, { onEnd: 'marker' });
  const back: Buffer[] = [];
  c.on('data', (b: Buffer) => back.push(b));
  const ended = new Promise<void>((r) => c.on('end', () => r()));
  const payload = Buffer.alloc(1_000_000);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
  c.end(payload);
  t.same(await got, payload, 'a megabyte arrives whole, split into messages');
  await ended;
  t.equal(Buffer.concat(back).length, 300_000, 'the answer after the client\'s end arrives whole');
  t.ok(back.every((b) => b.length <= 64 * 1024), 'messages of at most 64 KiB');
});
