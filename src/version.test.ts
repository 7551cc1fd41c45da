import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { buildInfo, renderVersion, UNKNOWN_REVISION } from "./version.js";

test("from the sources (no build stamp): package.json's version, an unknown revision and the running Node", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  assert.deepEqual(buildInfo(), { version: pkg.version, revision: UNKNOWN_REVISION, node: process.version });
  assert.equal(
    renderVersion({ version: "1.2.3", revision: "0123456789ab-dirty", node: "v24.22.3" }),
    "azure-msi-operator 1.2.3 (revision 0123456789ab-dirty, node v24.22.3)\n",
  );
});
