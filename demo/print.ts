// How the demo talks to a human: pure formatting, no I/O (the caller writes the strings).

const INDENT = "      ";

export function stepHeader(index: number, total: number, title: string, why: string): string {
  return `\n==> ${index}/${total}  ${title}\n    ${why}`;
}

/** Command output as it came, indented under its command; "(no output)" rather than nothing. */
export function indent(text: string, prefix = INDENT): string {
  const trimmed = text.replace(/\s+$/, "");
  if (trimmed === "") return `${prefix}(no output)`;
  return trimmed
    .split("\n")
    .map((line) => `${prefix}${line}`)
    .join("\n");
}

/** A shell-ish rendering of a kubectl call, with whose kubeconfig it runs. */
export function commandLine(who: string, args: readonly string[], stdinFrom?: string): string {
  const quoted = args.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`));
  return `    [${who}] $ kubectl ${quoted.join(" ")}${stdinFrom ? ` < ${stdinFrom}` : ""}`;
}

/** The exposition lines whose metric name matches, like `grep -E '^(name1|name2)[{ ]'`. */
export function metricsExcerpt(exposition: string, names: readonly string[]): string[] {
  const pattern = new RegExp(`^(${names.join("|")})[{ ]`);
  return exposition.split("\n").filter((line) => pattern.test(line));
}

/** One operator JSON log line without the fields every line has, as text. */
export function logLine(line: Record<string, unknown>): string {
  const { receivedAt: _receivedAt, pid: _pid, hostname: _hostname, app: _app, ...rest } = line;
  return JSON.stringify(rest);
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
