import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { cacheRoot } from "../support/cache-dir.js";
import { PROMTOOL, prometheusRelease, promtoolBinary } from "./promtool.js";

const exec = promisify(execFile);

describe("Go tools built from the module proxy: promtool", () => {
  let scratch: string;
  // A promtool on PATH that must lose to the pinned build, and no TEST_ASSET_PROMTOOL from the caller.
  let env: NodeJS.ProcessEnv;
  let decoyOnPath: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "gotool-test-"));
    await mkdir(join(scratch, "bin"));
    decoyOnPath = join(scratch, "bin", "promtool");
    await writeFile(decoyOnPath, "#!/bin/sh\necho decoy\n", { mode: 0o755 });
    env = { ...process.env, PATH: `${join(scratch, "bin")}:${process.env.PATH ?? ""}` };
    delete env[PROMTOOL.override];
  });
  after(async () => rm(scratch, { recursive: true, force: true }));

  test("builds the pinned version into the cache, not whatever promtool is on PATH", async () => {
    const binary = await promtoolBinary({ env });
    assert.notEqual(binary, decoyOnPath);
    assert.ok(binary.startsWith(join(cacheRoot(), "tools", `promtool-${PROMTOOL.version}-`)), binary);
    const { stdout: buildInfo } = await exec("go", ["version", "-m", binary]);
    assert.match(buildInfo, /^\s+path\s+github\.com\/prometheus\/prometheus\/cmd\/promtool$/m);
    assert.match(buildInfo, new RegExp(`^\\s+mod\\s+github\\.com/prometheus/prometheus\\s+${PROMTOOL.version.replace(/\./g, "\\.")}\\s`, "m"));
    assert.match(buildInfo, /^\s+build\s+CGO_ENABLED=0$/m);
    const { stdout, stderr } = await exec(binary, ["--version"]);
    assert.match(stdout + stderr, new RegExp(`^promtool, version ${prometheusRelease(PROMTOOL.version).replace(/\./g, "\\.")} `));
  });

  test("a second call finds the cached binary at once: same path, nothing built or waited for", async () => {
    const first = await promtoolBinary({ env });
    const logged: string[] = [];
    const started = Date.now();
    const second = await promtoolBinary({ env, log: (line) => logged.push(line) });
    const tookMs = Date.now() - started;
    assert.equal(second, first);
    assert.deepEqual(logged, []);
    assert.ok(tookMs < 2_000, `the cached lookup took ${tookMs} ms`);
  });

  test("TEST_ASSET_PROMTOOL is used as given, and a bad one fails saying what is wrong with it", async () => {
    const missing = join(scratch, "no-such-promtool");
    await assert.rejects(promtoolBinary({ env: { ...env, TEST_ASSET_PROMTOOL: missing } }), {
      message: `TEST_ASSET_PROMTOOL=${missing} does not exist: point it at a promtool binary, or unset it to build the pinned promtool (github.com/prometheus/prometheus ${PROMTOOL.version}) from the Go module proxy`,
    });
    await assert.rejects(promtoolBinary({ env: { ...env, TEST_ASSET_PROMTOOL: scratch } }), /^Error: TEST_ASSET_PROMTOOL=\S+ is not a file: /);
    const notExecutable = join(scratch, "promtool.txt");
    await writeFile(notExecutable, "");
    await chmod(notExecutable, 0o644);
    await assert.rejects(promtoolBinary({ env: { ...env, TEST_ASSET_PROMTOOL: notExecutable } }), /^Error: TEST_ASSET_PROMTOOL=\S+ is not executable: /);
    assert.equal(await promtoolBinary({ env: { ...env, TEST_ASSET_PROMTOOL: decoyOnPath } }), decoyOnPath);
  });

  test("Prometheus module versions map to release numbers", () => {
    assert.equal(prometheusRelease("v0.316.0"), "3.16.0");
    assert.equal(prometheusRelease("v0.305.2"), "3.5.2");
    assert.throws(() => prometheusRelease("v2.53.0"), /not a Prometheus module version/);
  });
});
