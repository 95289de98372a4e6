/**
 * The manual pages in man/: `mandoc -Tlint` prints nothing for any of them,
 * and each documents what the contract says it must (every flag, key and
 * environment variable of its program).
 *
 * mandoc checks every .Xr reference: against /usr/share/man/mandoc.db, then
 * the man directories, and last against NAME.SECTION in the current
 * directory.  Debian builds no mandoc.db, so a reference to any page of
 * another package prints "outdated mandoc.db lacks ..." even when the page is
 * installed.  Hence: lint runs in man/, .Xr names only our own pages, and
 * other pages are written as plain text, such as ssh(1).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './lib/util';

const MAN = path.join(ROOT, 'man');
const PAGES = ['gotd.8', 'gotd.conf.5', 'gotd-secrets.conf.5', 'gotsh.1', 'gotctl.8', 'git-remote-ws.1'];

function read(page: string): string {
  return fs.readFileSync(path.join(MAN, page), 'utf8');
}

/** The rendered text of a page, as man(1) would show it, without overstrike. */
function render(page: string): string {
  const r = spawnSync('mandoc', ['-Tascii', '-Owidth=200', page], { cwd: MAN, encoding: 'utf8' });
  if (r.error) throw r.error;
  return r.stdout.replace(/.\x08/g, '');
}

t.test('man/ holds exactly the pages of the contract', async (t) => {
  t.same(fs.readdirSync(MAN).sort(), [...PAGES].sort());
});

for (const page of PAGES) {
  t.test(`mandoc -Tlint ${page}`, async (t) => {
    const r = spawnSync('mandoc', ['-Tlint', page], { cwd: MAN, encoding: 'utf8' });
    if (r.error) throw new Error(`mandoc: ${r.error.message} (Debian: apt-get install mandoc)`);
    t.equal(r.stdout + r.stderr, '', 'no output');
    t.equal(r.status, 0, 'exit status 0');
  });

  t.test(`${page}: header, sections, references`, async (t) => {
    const src = read(page);
    const [name, sec] = [page.slice(0, page.lastIndexOf('.')), page.slice(page.lastIndexOf('.') + 1)];
    t.match(src, new RegExp(`^\\.Dt ${name.toUpperCase().replace(/\./g, '\\.')} ${sec}$`, 'm'), '.Dt matches the file name');
    t.match(src, new RegExp(`^\\.Nm ${name.replace(/\./g, '\\.')}`, 'm'), '.Nm is the page name');
    for (const section of ['NAME', 'DESCRIPTION', 'SEE ALSO']) {
      t.match(src, new RegExp(`^\\.Sh ${section}$`, 'm'), `has ${section}`);
    }
    if (sec !== '5') t.match(src, /^\.Sh SYNOPSIS$/m, 'has SYNOPSIS');
    if (sec !== '5') t.match(src, /^\.Sh EXIT STATUS$/m, 'has EXIT STATUS');
    t.match(src, /^\.Sh EXAMPLES$/m, 'has EXAMPLES');
    const xrefs = [...src.matchAll(/^\.Xr (\S+) (\d)/gm)].map((m) => `${m[1]}.${m[2]}`);
    for (const x of new Set(xrefs)) t.ok(PAGES.includes(x), `.Xr ${x} is one of our pages (others are plain text)`);
    const seeAlso = src.slice(src.indexOf('.Sh SEE ALSO'));
    for (const other of PAGES.filter((p) => p !== page && src.includes(`.Xr ${p.replace(/\.(\d)$/, ' $1')}`))) {
      t.ok(seeAlso.includes(`.Xr ${other.replace(/\.(\d)$/, ' $1')}`), `SEE ALSO lists ${other}, which the text refers to`);
    }
  });
}

/** Things each page must mention, straight from the contract. */
const MUST: Record<string, RegExp[]> = {
  'gotd.8': [/^\.Op Fl dnv$/m, /^\.It Fl d$/m, /^\.It Fl n$/m, /^\.It Fl v$/m, /^\.It Fl f Ar config$/m,
    /^\.It Fl s Ar secrets$/m, /\/etc\/gotd\.conf/, /\/etc\/gotd-secrets\.conf/, /\/var\/run\/gotd\.sock/,
    /bwrap/, /permission model/, /access denied/, /quarantine/],
  'gotd.conf.5': ['user', 'listen', 'request_timeout', 'auth_timeout', 'max_connections', 'limit_per_user',
    'limits', 'trusted_accounts', 'tls', 'rate', 'name', 'path', 'access', 'branches', 'branch_namespaces',
    'tag_namespaces', 'namespaces', 'http', 'email'].map((k) => new RegExp(`^\\.It Ic ${k} No =`, 'm'))
    .concat([/\[connection\]/, /\[ssh\]/, /\[websocket\]/, /\[\[repository\]\]/, /\[repository\.protect\]/,
      /\[repository\.notify\]/, /^\.Em last$/m, /no rule matches, access is denied/i, /anonymous/,
      /401/, /403/, /429/, /Retry-After/, /WWW-Authenticate: Basic realm="gotd"/, /\[remote rejected\]/,
      /-atomic/]),
  'gotd-secrets.conf.5': [/\[users\./, /^\.It Ic password No =/m, /^\.It Ic groups No =/m, /^\.It Ic \[hmac\]$/m,
    /\[auth\./, /0640/, /0600/, /hash-password/],
  'gotsh.1': [/^\.Fl c$/m, /^\.It Fl u Ar name$/m, /^\.It Ev GOTD_UNIX_SOCKET$/m, /^\.It Ev GIT_PROTOCOL$/m,
    /^\.It Ev SSH_ORIGINAL_COMMAND$/m, /git-upload-pack/, /git-receive-pack/, /trusted_accounts/,
    /command="[^"]*gotsh -u alice",restrict ssh-ed25519/, /DisableForwarding yes/, /PermitTTY no/,
    /AcceptEnv GIT_PROTOCOL/, /ForceCommand/, /gotsh: access denied/],
  'gotctl.8': [/^\.Cm info$/m, /^\.Cm stop$/m, /^\.Cm reload$/m, /^\.Cm hash-password$/m, /^\.It Fl f Ar socket$/m,
    /^\.It Cm reload Op Fl c Ar config$/m, /trailing newline/],
  'git-remote-ws.1': [/^\.Nm git-remote-wss$/m, /ws:\/\//, /wss:\/\//, /git credential fill/, /git credential approve/,
    /git credential reject/, /^\.It Ev GIT_TERMINAL_PROMPT$/m, /^\.It Ev GOTD_WS_CAFILE$/m, /^\.It 401$/m,
    /^\.It 403$/m, /^\.It 429 , 503$/m, /Retry-After/],
};

for (const [page, patterns] of Object.entries(MUST)) {
  t.test(`${page} documents the contract`, async (t) => {
    const src = read(page);
    for (const re of patterns) t.match(src, re, String(re));
  });
}

t.test('pages render', async (t) => {
  const text = render('gotd.conf.5');
  t.match(text, /the LAST matching rule decides|the last\s+matching rule decides/i);
  t.match(render('gotsh.1'), /GOTD_UNIX_SOCKET/);
});
