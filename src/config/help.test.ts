import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "./config.js";
import { COMMANDS, FLAGS } from "./flags.js";
import { renderFlagsMarkdown, renderHelp } from "./help.js";

function helpText(): string {
  const result = parseConfig(["--help"], {});
  assert.ok(!result.ok && result.help);
  return result.text;
}

test("--help lists every flag of the table with its aliases, env vars and default", () => {
  const text = helpText();
  assert.equal(text, renderHelp());
  for (const flag of FLAGS) {
    // The flag's row, and the next line in case the description was moved under a long name.
    const lines = text.split("\n");
    const at = lines.findIndex((l) => new RegExp(`^  (-\\w, |    )--${flag.name.replace(/\./g, "\\.")}(=|\\s|$)`).test(l));
    assert.ok(at >= 0, flag.name);
    const line = `${lines[at]} ${lines[at + 1]}`;
    for (const alias of flag.aliases ?? []) assert.ok(line.includes(`--${alias}`), `${flag.name}: alias ${alias}`);
    if (flag.short) assert.ok(text.includes(`-${flag.short}, --${flag.name}`), `${flag.name}: short`);
    for (const env of flag.env ?? []) assert.ok(line.includes(`$${env}`), `${flag.name}: ${env}`);
    const shown = flag.defaultNote ?? (Array.isArray(flag.default) ? (flag.default.length ? flag.default.join(" ") : undefined) : flag.default);
    if (shown !== undefined) assert.ok(line.includes(`(default: ${String(shown)})`), `${flag.name}: default ${String(shown)}`);
    assert.ok(line.includes(flag.help), `${flag.name}: help`);
  }
  for (const command of COMMANDS) assert.match(text, new RegExp(`^  ${command.name} `, "m"));
  assert.match(text, /-h, --help/);
});

test("--help shows the Go operator's defaults as users write them", () => {
  const text = helpText();
  for (const expected of [
    "(default: 1h) [$SYNC_INTERVAL]",
    "(default: 5m) [$SYNC_LOCKTIME]",
    '(default: {{index .Tags "k8snamespace"}})',
    "(default: {{ .Name }}-{{ .ClientId }})",
    "(default: kube-system kube-public default gatekeeper-system istio-system)",
    "(default: :8080) [$SERVER_BIND]",
    "(default: 2190h)",
    "(default: 2006-01-02)",
    "(default: msi.azure.k8s.io/%s)",
    "(default: janitor/expires)",
  ]) {
    assert.ok(text.includes(expected), expected);
  }
});

test("the markdown table has one row per flag: flag | env | default | description", () => {
  const rows = renderFlagsMarkdown().trimEnd().split("\n");
  assert.equal(rows[0], "| flag | env | default | description |");
  assert.equal(rows.length, FLAGS.length + 2);
  FLAGS.forEach((flag, i) => {
    const row = rows[i + 2]!;
    assert.ok(row.startsWith(`| \`--${flag.name}\``), row);
    for (const env of flag.env ?? []) assert.ok(row.includes(`\`${env}\``), row);
    // Four cells: pipes inside cells are escaped.
    assert.equal(row.replace(/\\\|/g, "").split("|").length, 6, row);
  });
  assert.ok(rows.some((row) => row.includes("`--server.bind`, `--bind`") && row.includes("`:8080`")));
  assert.ok(rows.some((row) => row.includes("`--log.debug`, `--debug`, `--verbose`, `-v`")));
});
