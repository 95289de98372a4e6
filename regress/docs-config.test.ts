/**
 * The example configurations gotd ships and documents are valid for the
 * real gotd: etc/gotd.conf with etc/gotd-secrets.conf, and the TOML examples
 * inside gotd.conf(5) and gotd(8), all pass `gotd -n`; and `gotd -n` behaves
 * as the manual says for a bad key and for a secrets file others can read.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, BUILD, run, tmpdir } from './lib/util';

const GOTD = path.join(BUILD, 'src', 'gotd', 'main.js');
const CONF = path.join(ROOT, 'etc', 'gotd.conf');

/** `gotd -n ARGS`, run from the build tree. */
function gotdCheck(args: string[]) {
  return run(process.execPath, [GOTD, '-n', ...args], { cwd: tmpdir('gotd-check-') });
}

/** A copy of the example secrets file with the mode gotd demands (git checks files out 0644). */
function secrets(): string {
  const file = path.join(tmpdir('gotd-secrets-'), 'gotd-secrets.conf');
  fs.copyFileSync(path.join(ROOT, 'etc', 'gotd-secrets.conf'), file);
  fs.chmodSync(file, 0o600);
  return file;
}

/** The literal TOML of the first display after ".Sh EXAMPLES" that contains `marker`, roff escapes undone. */
function manExample(page: string, marker: string): string {
  const src = fs.readFileSync(path.join(ROOT, 'man', page), 'utf8');
  const examples = src.slice(src.indexOf('.Sh EXAMPLES'));
  for (const m of examples.matchAll(/^\.Bd -literal[^\n]*\n([\s\S]*?)^\.Ed$/gm)) {
    if (m[1]!.includes(marker)) {
      return m[1]!.replace(/\\e/g, '\\').replace(/\\&/g, '').replace(/\\\(dq/g, '"').replace(/\\\(aq/g, "'");
    }
  }
  throw new Error(`${page}: no example containing ${marker}`);
}

function write(text: string): string {
  const file = path.join(tmpdir('gotd-conf-'), 'gotd.conf');
  fs.writeFileSync(file, text);
  return file;
}

t.test('etc/gotd.conf with etc/gotd-secrets.conf', async (t) => {
  const r = await gotdCheck(['-f', CONF, '-s', secrets()]);
  t.equal(r.code, 0, `gotd -n exits 0: ${r.stderr}`);
  t.match(r.stderr, /configuration OK/);
});

t.test('the example in gotd.conf(5)', async (t) => {
  const file = write(manExample('gotd.conf.5', '[[repository]]'));
  const r = await gotdCheck(['-f', file, '-s', secrets()]);
  t.equal(r.code, 0, `gotd -n exits 0: ${r.stderr}`);
});

t.test('the example in gotd(8)', async (t) => {
  const file = write(manExample('gotd.8', '[[repository]]'));
  const r = await gotdCheck(['-f', file, '-s', secrets()]);
  t.equal(r.code, 0, `gotd -n exits 0: ${r.stderr}`);
});

t.test('a bad key is named, as gotd.conf(5) says', async (t) => {
  const bad = fs.readFileSync(CONF, 'utf8').replace('[connection]\n', '[connection]\nrequest_timout = "1h"\n');
  const file = write(bad);
  const r = await gotdCheck(['-f', file, '-s', secrets()]);
  t.equal(r.code, 1, 'gotd -n exits 1');
  t.ok(r.stderr.includes(`${file}: connection.request_timout: unknown key`), `FILE: KEY: PROBLEM (${r.stderr.trim()})`);
  t.notMatch(r.stderr, /configuration OK/);
});

t.test('a secrets file others can read is refused, as gotd-secrets.conf(5) says', async (t) => {
  const file = secrets();
  fs.chmodSync(file, 0o644);
  const r = await gotdCheck(['-f', CONF, '-s', file]);
  t.equal(r.code, 1, 'gotd -n exits 1');
  t.match(r.stderr, /0600 or 0640/);
  t.notMatch(r.stderr, /ci = |\$scrypt\$/, 'no secret is quoted');
});
