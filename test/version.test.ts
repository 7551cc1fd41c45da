// The bundle (what the image ships and the tests run) says which build it is: the version and the git
// revision stamped when it was bundled, and the Node it runs on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { buildStamp, ROOT } from "../tools/bundle.js";
import { operatorBundle } from "./support/operator-bundle.js";
import { runProcess } from "./support/process.js";

test("the bundle's --version and version print the stamped version and revision, and the running Node", async () => {
  const stamp = buildStamp();
  const head = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  assert.match(stamp.revision, new RegExp(`^${head}(-dirty)?$`), "the revision is this work tree's HEAD");
  const main = await operatorBundle();
  for (const argv of [["--version"], ["version"]]) {
    const result = await runProcess(process.execPath, [main, ...argv], { cwd: ROOT });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `azure-msi-operator ${stamp.version} (revision ${stamp.revision}, node ${process.version})\n`);
  }
});

test("REVISION from the environment (a build without git, as the image's) wins over git", () => {
  assert.equal(buildStamp({ REVISION: " 0123456789ab\n" }).revision, "0123456789ab");
  assert.equal(buildStamp({ REVISION: "" }).revision, buildStamp({}).revision);
});
