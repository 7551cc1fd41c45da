import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildInfo } from "../version.js";
import { Metrics } from "./metrics.js";

const value = async (gauge: Metrics["syncLastSuccess"]) => (await gauge.get()).values[0]?.value;

describe("Metrics.recordSyncRun", () => {
  test("counts the run by result and keeps the end time of the last success and the last failure apart", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    assert.equal(await value(metrics.syncLastSuccess), 0, "0 until the first success");
    assert.equal(await value(metrics.syncLastFailure), 0, "0 until the first failure");
    metrics.recordSyncRun("success", 1_000_000);
    metrics.recordSyncRun("failed", 1_500_000);
    metrics.recordSyncRun("failed", 2_000_500);
    assert.equal(await value(metrics.syncLastSuccess), 1000);
    assert.equal(await value(metrics.syncLastFailure), 2000.5);
    const runs: Record<string, number> = {};
    for (const sample of (await metrics.syncRuns.get()).values) runs[String(sample.labels.result)] = sample.value;
    assert.deepEqual(runs, { success: 1, failed: 2 });
  });
});

test("azuremsi_build_info is 1, labelled with the build that runs", async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const text = await metrics.registry.getSingleMetricAsString("azuremsi_build_info");
  const { version, revision, node } = buildInfo();
  assert.match(text, new RegExp(`^azuremsi_build_info\\{version="${version}",revision="${revision}",node="${node}"\\} 1$`, "m"));
});
