// Command-line syntax as go-flags accepted it for the Go operator: `--name=value` or `--name value`,
// bool flags take no separate value (`--flag`, or `--flag=false`), list flags repeat, the last of a
// repeated scalar wins. Values are only collected here; they are parsed per kind in config.ts.
import { COMMANDS, FLAGS, findFlag, type Command, type FlagSpec } from "./flags.js";

export interface CliValue {
  /** Every value given, in order (a scalar uses the last). */
  values: string[];
  /** The spelling last used (`--bind`, `-v`), for messages. */
  via: string;
}

export type ArgvResult = { ok: true; help: boolean; version: boolean; command: Command; values: Map<string, CliValue> } | { ok: false; error: string };

const HELP_FLAGS = new Set(["-h", "--help"]);
/** `--version` (anywhere, as --help) or the `version` command: print the build and exit 0. */
export const VERSION_FLAG = "--version";
export const VERSION_COMMAND = "version";

// A scanner over argv's forms (--flag=v, --flag v, -v, --no-flag, --): one branch per form reads best.
// eslint-disable-next-line complexity
export function scanArgv(argv: readonly string[]): ArgvResult {
  const end = argv.indexOf("--");
  const options = end < 0 ? argv : argv.slice(0, end);
  // Asking for help always gets help, whatever else is on the line.
  if (options.some((arg) => HELP_FLAGS.has(arg))) return { ok: true, help: true, version: false, command: "run", values: new Map() };
  if (options.includes(VERSION_FLAG)) return { ok: true, help: false, version: true, command: "run", values: new Map() };

  const values = new Map<string, CliValue>();
  const record = (spec: FlagSpec, value: string, via: string) => {
    const entry = values.get(spec.name);
    if (entry) {
      entry.values.push(value);
      entry.via = via;
    } else values.set(spec.name, { values: [value], via });
  };
  let command: Command | undefined;
  let version = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (end >= 0 && i >= end) {
      if (i === end) continue;
      return { ok: false, error: `unexpected argument ${JSON.stringify(arg)}` };
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const spec = findFlag(name);
      if (spec === undefined) return { ok: false, error: unknownFlag(`--${name}`, name) };
      if (spec.kind === "bool") {
        record(spec, inline ?? "true", `--${name}`);
        continue;
      }
      if (inline !== undefined) {
        record(spec, inline, `--${name}`);
        continue;
      }
      const next = argv[i + 1];
      if (next === undefined || (end >= 0 && i + 1 >= end) || looksLikeFlag(next))
        return { ok: false, error: `flag --${name} needs a value (--${name}=VALUE)` };
      record(spec, next, `--${name}`);
      i++;
    } else if (arg.startsWith("-") && arg.length > 1) {
      // Only bool flags have short forms, so they may be clustered (-v).
      for (const letter of arg.slice(1)) {
        const spec = FLAGS.find((flag) => flag.short === letter);
        if (spec === undefined || letter === "=") return { ok: false, error: unknownFlag(`-${letter}`, letter) };
        record(spec, "true", `-${letter}`);
      }
    } else if (command === undefined && !version && isCommand(arg)) {
      command = arg;
    } else if (command === undefined && !version && arg === VERSION_COMMAND) {
      version = true;
    } else {
      const known = [...COMMANDS.map((c) => c.name), VERSION_COMMAND].join(", ");
      return {
        ok: false,
        error: command === undefined && !version ? `unknown command ${JSON.stringify(arg)} (commands: ${known})` : `unexpected argument ${JSON.stringify(arg)}`,
      };
    }
  }
  return { ok: true, help: false, version, command: command ?? "run", values };
}

function isCommand(word: string): word is Command {
  return COMMANDS.some((c) => c.name === word);
}

/** A negative duration ("-5s") is a value, "--x" or "-v" is not. */
function looksLikeFlag(arg: string): boolean {
  return arg.startsWith("--") || /^-[A-Za-z]/.test(arg);
}

function unknownFlag(spelled: string, name: string): string {
  const suggestion = suggest(name);
  return `unknown flag ${spelled}${suggestion ? ` (did you mean --${suggestion}?)` : ""}; see --help`;
}

function suggest(name: string): string | undefined {
  const names = FLAGS.flatMap((flag) => [flag.name, ...(flag.aliases ?? [])]);
  const bySuffix = names.find((known) => known.endsWith(`.${name}`));
  if (bySuffix) return bySuffix;
  let best: { name: string; distance: number } | undefined;
  for (const known of names) {
    const distance = editDistance(name.toLowerCase(), known);
    if (best === undefined || distance < best.distance) best = { name: known, distance };
  }
  return best !== undefined && best.distance <= Math.max(2, Math.floor(name.length / 5)) ? best.name : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
