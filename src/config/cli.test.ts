import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readServiceAccountNamespace } from "./cli.js";

const cli = fileURLToPath(new URL("./cli.ts", import.meta.url));

/** Runs loadConfig in a child process, where it may print and exit. */
function run(argv: string[], env: Record<string, string> = {}) {
  const script = `import(${JSON.stringify(cli)}).then((m) => { m.loadConfig(${JSON.stringify(argv)}, ${JSON.stringify(env)}); console.log("LOADED"); })`;
  return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
}

test("the service-account namespace is read trimmed, and is absent outside a cluster", () => {
  const dir = mkdtempSync(join(tmpdir(), "sa-"));
  try {
    writeFileSync(join(dir, "namespace"), "ops\n");
    assert.equal(readServiceAccountNamespace(join(dir, "namespace")), "ops");
    assert.equal(readServiceAccountNamespace(join(dir, "missing")), undefined);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("a bad value prints one line on stderr and exits 2; --help prints usage and exits 0", () => {
  const bad = run([], { SYNC_INTERVAL: "1x" });
  assert.equal(bad.status, 2);
  assert.equal(bad.stdout, "");
  assert.equal(bad.stderr, 'azure-msi-operator: invalid value "1x" for --sync.interval (SYNC_INTERVAL): not a Go duration (examples: 90s, 1h30m)\n');

  const help = run(["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage:\n {2}azure-msi-operator \[run\|sync\|diff\|audit\|migrate\] \[OPTIONS\]/);
  assert.match(help.stdout, /^ {2}migrate print the pods still on aad-pod-identity and the changes that move them to workload identity, writing nothing/m);

  const good = run(["sync", "--once"]);
  assert.equal(good.status, 0);
  assert.match(good.stdout, /LOADED/);
});

test("--version (anywhere) and the version command print the version, the revision and the Node version, and exit 0", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  const line = `azure-msi-operator ${pkg.version} (revision unknown, node ${process.version})\n`;
  for (const argv of [["--version"], ["version"], ["diff", "--version"], ["--sync.interval=bad", "--version"]]) {
    const result = run(argv);
    assert.equal(result.status, 0, JSON.stringify(argv));
    assert.equal(result.stdout, line, JSON.stringify(argv));
    assert.equal(result.stderr, "");
  }
  // Only a command word asks for the version: a flag's value does not, a second command is an error.
  const valued = run(["diff", "--azure.subscription", "version"]);
  assert.match(valued.stdout, /LOADED/);
  const twice = run(["diff", "version"]);
  assert.equal(twice.status, 2);
  assert.equal(twice.stderr, 'azure-msi-operator: unexpected argument "version"\n');
});
