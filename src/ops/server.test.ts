import { test } from "node:test";
import assert from "node:assert/strict";
import { Metrics } from "../metrics/metrics.js";
import { startOpsServer } from "./server.js";

test("/healthz fails with the reason while something says the process should be restarted, and is ok again after", async () => {
  let unhealthy: string | undefined = 'leader duty "syncer" has failed to start for 120 s (7 attempts): issuer discovery failed';
  const server = await startOpsServer({
    host: "127.0.0.1",
    port: 0,
    readTimeoutMs: 5_000,
    writeTimeoutMs: 5_000,
    metrics: new Metrics({ defaultMetrics: false }),
    notReady: () => undefined,
    unhealthy: () => unhealthy,
  });
  try {
    const failing = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    assert.equal(failing.status, 503);
    assert.deepEqual(await failing.json(), { status: "unhealthy", reason: unhealthy });
    unhealthy = undefined;
    const fine = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    assert.equal(fine.status, 200);
    assert.deepEqual(await fine.json(), { status: "ok" });
  } finally {
    await server.close();
  }
});
