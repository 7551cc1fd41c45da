// --help and the reference's flag table (docs/reference.md), both rendered from the flag table so neither can drift.
import { VERSION_COMMAND, VERSION_FLAG } from "./argv.js";
import { COMMANDS, FLAGS, type FlagKind, type FlagSpec } from "./flags.js";

const VERSION_HELP = "print the version, the git revision and the Node version, then exit";

const PROGRAM = "azure-msi-operator";

const PLACEHOLDER: Record<FlagKind, string> = {
  bool: "",
  string: "=<string>",
  duration: "=<duration>",
  list: "=<value>",
  int: "=<int>",
  layout: "=<layout>",
  template: "=<template>",
  address: "=<[host]:port>",
  rotation: "=<fraction|duration>",
};

/** The default as a user would type it; undefined when there is none to show. */
function defaultText(flag: FlagSpec): string | undefined {
  if (flag.defaultNote !== undefined) return flag.defaultNote;
  if (flag.default === undefined) return undefined;
  if (typeof flag.default === "string") return flag.default;
  return flag.default.length > 0 ? flag.default.join(" ") : undefined;
}

function description(flag: FlagSpec): string {
  return flag.kind === "list" ? `${flag.help} (repeatable; space-separated in env)` : flag.help;
}

const groups = (): string[] => [...new Set(FLAGS.map((flag) => flag.group))];

export function renderHelp(): string {
  const rows = (flag: FlagSpec): [string, string] => {
    const short = flag.short !== undefined ? `-${flag.short}, ` : "    ";
    const left = `  ${short}--${flag.name}${PLACEHOLDER[flag.kind]}`;
    const defaults = defaultText(flag);
    const aliases = flag.aliases?.length ? ` (also ${flag.aliases.map((alias) => `--${alias}`).join(", ")})` : "";
    const env = flag.env?.length ? ` [${flag.env.map((name) => `$${name}`).join(", ")}]` : "";
    return [left, `${description(flag)}${aliases}${defaults !== undefined ? ` (default: ${defaults})` : ""}${env}`];
  };
  const all = FLAGS.map(rows);
  const width = Math.min(48, Math.max(...all.map(([left]) => left.length)) + 2);
  const line = ([left, right]: [string, string]) => (left.length + 2 > width ? `${left}\n${" ".repeat(width)}${right}` : `${left.padEnd(width)}${right}`);

  const out = [`Usage:`, `  ${PROGRAM} [${COMMANDS.map((c) => c.name).join("|")}] [OPTIONS]`, "", "Commands:"];
  for (const command of COMMANDS) out.push(`  ${command.name.padEnd(8)}${command.help}`);
  out.push(`  ${VERSION_COMMAND.padEnd(8)}${VERSION_HELP}`);
  for (const group of groups()) {
    out.push("", `${group}:`);
    for (const flag of FLAGS.filter((f) => f.group === group)) out.push(line(rows(flag)));
  }
  out.push("", "Help:", line(["  -h, --help", "show this help"]), line([`      ${VERSION_FLAG}`, VERSION_HELP]), "");
  out.push("Flags win over env vars, env vars over defaults. Durations use Go syntax (90s, 1h30m).");
  out.push("Azure credentials come from the environment (DefaultAzureCredential: client secret, workload identity, managed identity).");
  return out.join("\n") + "\n";
}

const cell = (text: string): string => text.replace(/\|/g, "\\|");
const code = (text: string): string => "`" + cell(text) + "`";

/** A markdown table of every flag: flag | env | default | description. */
export function renderFlagsMarkdown(): string {
  const lines = ["| flag | env | default | description |", "| --- | --- | --- | --- |"];
  for (const flag of FLAGS) {
    const names = [`--${flag.name}`, ...(flag.aliases ?? []).map((alias) => `--${alias}`), ...(flag.short !== undefined ? [`-${flag.short}`] : [])];
    const defaults = flag.defaultNote !== undefined ? `_${cell(flag.defaultNote)}_` : defaultText(flag) !== undefined ? code(defaultText(flag)!) : "";
    const env = (flag.env ?? []).map(code).join(", ");
    lines.push(`| ${names.map(code).join(", ")} | ${env} | ${defaults} | ${cell(description(flag))} |`);
  }
  return lines.join("\n") + "\n";
}
