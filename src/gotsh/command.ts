/**
 * What gotsh agrees to do, decided from its name and arguments alone:
 * git-upload-pack or git-receive-pack of one repository, nothing else.
 * Nothing is ever executed; a refused invocation never reaches gotd.
 */
import * as path from 'node:path';
import type { Service } from '../ipc/messages';

export interface Invocation { service: Service; repo: string; asUser?: string }
export type Parsed = Invocation | { error: string };

const SERVICES: readonly string[] = ['git-upload-pack', 'git-receive-pack'];
/** Characters that mean nothing to a shell and may stand unquoted. */
const SAFE = /[A-Za-z0-9._/@+:=,%~-]/;

/**
 * Splits a command line the way sh would for the quoting git uses
 * ('...' and \' \! between quotes); anything else a shell would act on
 * (; | & $ ` < > * ? " ( ) newlines, ...) is refused.
 */
export function splitCommand(cmd: string): string[] | { error: string } {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'") {
      const end = cmd.indexOf("'", i + 1);
      if (end < 0) return { error: 'unterminated quote in command' };
      word = (word ?? '') + cmd.slice(i + 1, end);
      i = end;
    } else if (c === '\\' && (cmd[i + 1] === "'" || cmd[i + 1] === '!')) {
      word = (word ?? '') + cmd[i + 1];
      i++;
    } else if (SAFE.test(c)) {
      word = (word ?? '') + c;
    } else {
      return { error: `shell metacharacters are not allowed (${JSON.stringify(c)})` };
    }
  }
  if (word !== null) words.push(word);
  return words;
}

function service(word: string): Service | null {
  const base = word.includes('/') ? path.posix.basename(word) : word;
  return SERVICES.includes(base) ? (base as Service) : null;
}

const ONLY = 'only git-upload-pack and git-receive-pack are allowed';

/** A command line from `gotsh -c` or SSH_ORIGINAL_COMMAND. */
export function parseCommand(cmd: string, env: NodeJS.ProcessEnv, nested = false): Parsed {
  const words = splitCommand(cmd);
  if ('error' in words) return words;
  if (words.length === 0) return { error: 'interactive logins are not allowed; this account serves git only' };
  const svc = service(words[0]!);
  if (!svc) {
    // A shared account whose login shell is gotsh, with command="gotsh -u NAME" in authorized_keys.
    if (!nested && path.posix.basename(words[0]!) === 'gotsh' && words[1] === '-u' && words.length === 3) {
      return forced(words[2]!, env);
    }
    return { error: `${ONLY}, not ${JSON.stringify(words[0]!.slice(0, 100))}` };
  }
  if (words.length !== 2) return { error: `${svc} takes exactly one argument, the repository` };
  return checkRepo(svc, words[1]!);
}

function checkRepo(svc: Service, repo: string): Parsed {
  if (repo.length === 0) return { error: 'empty repository name' };
  if (repo.startsWith('-')) return { error: `${svc}: options are not allowed` };
  return { service: svc, repo };
}

function forced(user: string, env: NodeJS.ProcessEnv): Parsed {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/.test(user)) return { error: `bad user name for -u: ${JSON.stringify(user.slice(0, 100))}` };
  const cmd = env.SSH_ORIGINAL_COMMAND;
  if (cmd === undefined) return { error: 'no command given (SSH_ORIGINAL_COMMAND is not set); interactive logins are not allowed' };
  const p = parseCommand(cmd, env, true);
  return 'error' in p ? p : { ...p, asUser: user };
}

/** The whole invocation: argv[0] (as a login shell it may start with "-") and the arguments. */
export function parseInvocation(argv0: string, args: readonly string[], env: NodeJS.ProcessEnv): Parsed {
  const name = path.posix.basename(argv0).replace(/^-/, '').replace(/\.js$/, '');
  const svc = service(name);
  if (svc) {
    if (args.length !== 1) return { error: `${svc} takes exactly one argument, the repository` };
    return checkRepo(svc, args[0]!);
  }
  if (args.length === 0) return { error: 'interactive logins are not allowed; this account serves git only' };
  const [opt, value] = args;
  if (opt === '-c') {
    if (args.length !== 2) return { error: 'usage: gotsh -c COMMAND' };
    return parseCommand(value!, env);
  }
  if (opt === '-u' || (opt!.startsWith('-u') && opt!.length > 2)) {
    const user = opt === '-u' ? value : opt!.slice(2);
    if (user === undefined || args.length !== (opt === '-u' ? 2 : 1)) return { error: 'usage: gotsh -u NAME (the command comes from SSH_ORIGINAL_COMMAND)' };
    return forced(user, env);
  }
  return { error: `${opt!.startsWith('-') ? `unknown option ${JSON.stringify(opt!.slice(0, 20))}` : 'unexpected arguments'}; usage: gotsh -c 'git-upload-pack REPO' | gotsh -u NAME` };
}
