// Shared command-line plumbing for the interop scripts (confluent.mjs, kafkajs.mjs).
//
// Each script is run as `node <script> <command> [args...]` with REGISTRY_URL set, prints exactly
// one JSON document on stdout and exits:
//   0  the command succeeded: the document is its result;
//   3  the client library (or the registry it talked to) reported an error: the document is
//      {"error": {"name", "message", "status", "errorCode"}} so a caller can assert on a refusal;
//   2  the command line itself was wrong (message on stderr, nothing on stdout).
// Avro bytes are exchanged as lowercase hex; "-" in place of hex or JSON reads it from stdin.
// `node <script> serve` runs many commands in one process instead (see serve below); the Go
// tests use it because loading these libraries costs far more than any command.

import { readFileSync } from 'node:fs';

export class UsageError extends Error {}

export function registryURL() {
  const url = process.env.REGISTRY_URL;
  if (!url) throw new UsageError('REGISTRY_URL is not set');
  return url.replace(/\/+$/, '');
}

// arg returns argv[i] or fails with a usage error naming what is missing.
export function arg(argv, i, what) {
  if (argv.length <= i || argv[i] === '') throw new UsageError(`missing ${what}`);
  return argv[i];
}

// readSchema reads an .avsc file and returns its text, checked to be JSON.
export function readSchema(path) {
  const text = readFileSync(path, 'utf8');
  json(text, path); // fail early with a clear message on a bad file
  return text;
}

// serving is set by serve(): stdin then carries commands, so "-" cannot mean "read stdin".
let serving = false;

function stdinOr(s) {
  if (s !== '-') return s;
  if (serving) throw new UsageError('"-" (stdin) is not available in serve mode');
  return readFileSync(0, 'utf8').trim();
}

function json(text, what) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what}: ${err.message}`);
  }
}

export function parseValue(s) {
  return json(stdinOr(s), 'value');
}

export function parseHex(s) {
  const hex = stdinOr(s).replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new UsageError('bytes must be hex');
  return Buffer.from(hex, 'hex');
}

export function parseID(s) {
  const id = Number(s);
  if (!Number.isInteger(id) || id < 0) throw new UsageError(`bad schema id ${JSON.stringify(s)}`);
  return id;
}

// flags splits argv into positional arguments and --name[=value] / --name value flags.
export function flags(argv, valued) {
  const pos = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      pos.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    if (eq >= 0) opts[name] = a.slice(eq + 1);
    else if (valued.includes(name)) opts[name] = arg(argv, ++i, `value for --${name}`);
    else opts[name] = true;
  }
  return { pos, opts };
}

// frame describes Confluent-framed bytes without trusting the library that made them.
export function frame(buf) {
  if (buf.length < 5) return { magic: buf.length > 0 ? buf[0] : null, id: null };
  return { magic: buf[0], id: buf.readInt32BE(1) };
}

function replacer(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
    return { hex: Buffer.from(value.data).toString('hex') };
  }
  return value;
}

function describe(err) {
  return {
    name: err?.name ?? 'Error',
    message: String(err?.message ?? err),
    status: typeof err?.status === 'number' ? err.status : null,
    errorCode: typeof err?.errorCode === 'number' ? err.errorCode : null,
  };
}

const isUsage = (err) => err instanceof UsageError || err?.code === 'ENOENT';

// call runs one command and returns its outcome: {ok: result}, {error: {...}} for an error
// from the library or the registry, or {usage: message} for a bad command line.
async function call(script, commands, name, args) {
  try {
    const cmd = Object.hasOwn(commands, name) ? commands[name] : null;
    if (!cmd) {
      throw new UsageError(
        `usage: REGISTRY_URL=... node ${script} <${Object.keys(commands).join('|')}|serve> [args...]`,
      );
    }
    return { ok: await cmd(args) };
  } catch (err) {
    return isUsage(err) ? { usage: `${script}: ${err.message}` } : { error: describe(err) };
  }
}

// serve answers commands read from stdin, one JSON array of strings per line
// (["register", "subject", "file.avsc"]), with one JSON line each: {"ok": result},
// {"error": {...}} or {"usage": "..."}, in order. It ends at end of input. Each command builds
// its own client, so commands share no cache, exactly as separate processes would; serving
// only saves the start-up of a Node process per command.
async function serve(script, commands) {
  serving = true;
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let argv;
    try {
      argv = JSON.parse(line);
    } catch (err) {
      argv = null;
    }
    const out = Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === 'string')
      ? await call(script, commands, argv[0], argv.slice(1))
      : { usage: `${script}: each line must be a JSON array of strings, the command first` };
    await new Promise((resolve) => process.stdout.write(JSON.stringify(out, replacer) + '\n', resolve));
  }
  process.exit(0);
}

// run dispatches argv[2] to commands[name](args) and reports the outcome as described at the
// top of this file; `serve` switches to the line protocol of serve().
export async function run(script, commands) {
  const [name, ...rest] = process.argv.slice(2);
  if (name === 'serve') return serve(script, commands);
  const out = await call(script, commands, name, rest);
  if (out.usage) {
    process.stderr.write(out.usage + '\n', () => process.exit(2));
    return;
  }
  const [doc, code] = out.error ? [{ error: out.error }, 3] : [out.ok, 0];
  process.stdout.write(JSON.stringify(doc, replacer) + '\n', () => process.exit(code));
}
