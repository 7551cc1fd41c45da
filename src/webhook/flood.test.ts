// Issue 23 in-process: the real webhook server over HTTPS under what a hostile in-cluster client
// sends. Metric series stay bounded whatever resources and operations reviews name; bodies past the
// in-flight budget are refused before a byte of them is read; connections past the cap are dropped.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Agent } from "node:https";
import pino from "pino";
import { mapLimit } from "../../bench/common.js";
import { heldRequest, paddedReview, postReview, seriesCount, statusOf, unknownResourceReview, type HeldRequest } from "../../test/support/flood.js";
import { eventually } from "../../test/support/operator.js";
import { startTestWebhook, type TestWebhook } from "../../test/support/webhook-server.js";
import { loadReview } from "./fixtures.js";
import { ADMISSION_BODY_LIMIT, DEFAULT_INFLIGHT_BYTES, REQUEST_OVERHEAD_BYTES, VALIDATE_IDENTITY_PATH, WEBHOOK_PATHS } from "./server.js";

const FLOOD = 20_000;
const SERIES_GROWTH_BOUND = 50;

/** The sum of a counter's samples whose labels include `labels`. */
const counterValue = async (webhook: TestWebhook, name: string, labels: Record<string, string>) =>
  (await webhook.metrics.registry.metrics())
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) && Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
    .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
const inflightBytes = async (webhook: TestWebhook) => (await webhook.metrics.webhookInflightBytes.get()).values[0]?.value ?? 0;

describe("webhook server under a flood of unknown resources and operations", () => {
  let webhook: TestWebhook;
  const logged: { msg: string; resource?: string; suppressedBefore?: number }[] = [];

  before(async () => {
    const log = pino({ level: "info" }, { write: (line: string) => logged.push(JSON.parse(line) as (typeof logged)[number]) });
    webhook = await startTestWebhook({ log });
  });
  after(async () => webhook?.close());

  test(`${FLOOD} reviews, each naming a resource of its own: /metrics grows by at most ${SERIES_GROWTH_BOUND} series`, { timeout: 300_000 }, async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    try {
      // Every webhook answers once first, so the series a normal day makes exist before the count.
      for (const path of WEBHOOK_PATHS) await postReview(webhook.server.port, webhook.ca, path, JSON.stringify(loadReview("binding-create-labelled")), agent);
      const before = seriesCount(await webhook.metrics.registry.metrics());
      const started = Date.now();
      const statuses: Record<string, number> = {};
      let unowned = 0;
      await mapLimit(
        Array.from({ length: FLOOD }, (_, index) => index),
        16,
        async (index) => {
          const review = unknownResourceReview(index);
          let path = WEBHOOK_PATHS[index % WEBHOOK_PATHS.length]!;
          // One in ten names an operation of its own (the schema refuses it), one in twenty a webhook path of its own.
          if (index % 10 === 3) (review.request as { operation: string }).operation = `FLOOD${index}`;
          else if (index % 20 === 7) path = `/validate/flood-${index}`;
          else unowned++;
          const reply = await postReview(webhook.server.port, webhook.ca, path, JSON.stringify(review), agent);
          statuses[reply.status] = (statuses[reply.status] ?? 0) + 1;
          if (reply.status === 200) {
            const { response } = JSON.parse(reply.body) as { response: { uid: string; allowed: boolean; warnings?: string[] } };
            assert.deepEqual([response.uid, response.allowed], [review.request.uid, true]);
            assert.match(response.warnings?.[0] ?? "", /was called for floods-/);
          }
        },
      );
      const after = seriesCount(await webhook.metrics.registry.metrics());
      const elapsedS = (Date.now() - started) / 1000;
      t.diagnostic(`${FLOOD} reviews in ${elapsedS.toFixed(1)} s, statuses ${JSON.stringify(statuses)}; series ${before} -> ${after}`);
      assert.deepEqual(statuses, { 200: unowned, 400: FLOOD / 10, 404: FLOOD / 20 });
      assert.ok(after - before <= SERIES_GROWTH_BOUND, `series grew from ${before} to ${after}`);
      const other = await counterValue(webhook, "azuremsi_admission_unowned_total", { resource: "other" });
      assert.equal(other, unowned, "every unknown resource counted, under resource=other");
      // The raw values in the log: a burst of 5, then 6 a minute.
      const lines = logged.filter((line) => line.msg.includes('counted as resource="other"'));
      assert.ok(lines.length >= 5 && lines.length <= 5 + Math.ceil(elapsedS / 10) + 1, `${lines.length} log lines in ${elapsedS} s`);
      assert.match(lines[0]?.resource ?? "", /^floods-\d+-r*$/);
    } finally {
      agent.destroy();
    }
  });
});

describe("webhook server: bodies in flight are bounded before they are read", () => {
  let webhook: TestWebhook;
  const held: HeldRequest[] = [];

  before(async () => {
    webhook = await startTestWebhook();
  });
  after(async () => {
    for (const request of held.splice(0)) request.socket.destroy();
    await webhook?.close();
  });

  /** Sends the headers of a POST declaring `declared` and waits until the server has either taken it in (the gauge holds its charge) or answered. */
  const hold = async (declared: number | "chunked"): Promise<{ request: HeldRequest; admitted: boolean }> => {
    const before = await inflightBytes(webhook);
    const request = await heldRequest(webhook.server.port, webhook.ca, VALIDATE_IDENTITY_PATH, declared);
    held.push(request);
    const charge = (declared === "chunked" ? ADMISSION_BODY_LIMIT : declared) + REQUEST_OVERHEAD_BYTES;
    const outcome = await eventually(
      async () => (request.received().includes("\r\n\r\n") ? "answered" : (await inflightBytes(webhook)) === before + charge ? "admitted" : undefined),
      10_000,
      `the server decided on a request declaring ${declared}`,
    );
    return { request, admitted: outcome === "admitted" };
  };

  test("past the budget: 429 with Retry-After before any body byte is sent, the connection closed; small reviews still answered", async (t) => {
    const port = webhook.server.port;
    const size = Math.floor(3.4 * 1024 * 1024);
    const charge = size + REQUEST_OVERHEAD_BYTES;
    // Large bodies may fill the budget up to its last sixteenth.
    const fits = Math.floor((DEFAULT_INFLIGHT_BYTES * 15) / 16 / charge);
    const outcomes = [];
    for (let index = 0; index < 12; index++) outcomes.push(await hold(size));
    outcomes.push(await hold("chunked"));
    const admitted = outcomes.filter((outcome) => outcome.admitted).map((outcome) => outcome.request);
    const refused = outcomes.filter((outcome) => !outcome.admitted).map((outcome) => outcome.request);
    assert.equal(admitted.length, fits);
    assert.deepEqual(
      outcomes.map((outcome) => outcome.admitted),
      outcomes.map((_, index) => index < fits),
    );
    for (const request of refused) {
      const answer = await request.answer;
      assert.equal(statusOf(answer), 429, answer);
      assert.match(answer, /\r\nretry-after: 1\r\n/i);
      assert.match(answer, /\r\nconnection: close\r\n/i);
      assert.equal(request.bodySent(), 0, "answered before any of the body was sent");
      await request.closed;
    }
    // What the admitted ones declared is held, no more: the server waits for their bodies.
    assert.equal(await inflightBytes(webhook), fits * charge);
    assert.ok(fits * charge <= DEFAULT_INFLIGHT_BYTES);
    assert.equal(await counterValue(webhook, "azuremsi_webhook_refused_total", { reason: "inflight" }), refused.length);

    // The API server's own reviews are small and have the rest of the budget.
    const small = await postReview(port, webhook.ca, VALIDATE_IDENTITY_PATH, JSON.stringify(loadReview("identity-create-by-developer")), false);
    assert.equal(small.status, 200, small.body);

    // The admitted ones are answered once their bodies come; then the budget is free again.
    admitted.forEach((request, index) => request.sendBody(Buffer.from(paddedReview(size, `held-${index}`, "many"))));
    for (const request of admitted) {
      const answer = await request.answer;
      assert.equal(statusOf(answer), 200, answer.slice(0, 300));
    }
    await eventually(async () => (await inflightBytes(webhook)) === 0, 5_000, "the budget released");
    t.diagnostic(`${fits} bodies of ${size} bytes admitted, ${refused.length} refused unread`);
  });

  test("a small body refused keeps its connection (the API server's pooled ones); past the body limit is still a 413", async () => {
    const large = await hold(Math.floor(3.4 * 1024 * 1024));
    assert.ok(large.admitted);
    // Small declared bodies fill the rest, the reserve included, until one is refused.
    let refused: HeldRequest | undefined;
    for (let index = 0; index < 200 && !refused; index++) {
      const small = await hold(60 * 1024);
      if (!small.admitted) refused = small.request;
    }
    assert.ok(refused, "a small body was refused once the whole budget was held");
    const answer = await refused.answer;
    assert.equal(statusOf(answer), 429);
    assert.match(answer, /\r\nretry-after: 1\r\n/i);
    assert.doesNotMatch(answer, /\r\nconnection: close\r\n/i);
    const used = await inflightBytes(webhook);
    assert.ok(used > (DEFAULT_INFLIGHT_BYTES * 15) / 16 && used <= DEFAULT_INFLIGHT_BYTES, `${used} bytes held`);
    for (const request of held.splice(0)) request.socket.destroy();
    await eventually(async () => (await inflightBytes(webhook)) === 0, 5_000, "the budget released when the clients went away");
    const oversize = await heldRequest(webhook.server.port, webhook.ca, VALIDATE_IDENTITY_PATH, ADMISSION_BODY_LIMIT + 1);
    held.push(oversize);
    assert.equal(statusOf(await oversize.answer), 413);
  });
});

describe("webhook server: connections past the cap", () => {
  let webhook: TestWebhook;

  before(async () => {
    webhook = await startTestWebhook({ maxConnections: 4 });
  });
  after(async () => webhook?.close());

  test("a new connection past the cap is dropped and the idle ones are closed, so the next one gets in", async () => {
    const agents = Array.from({ length: 4 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const body = JSON.stringify(loadReview("binding-create-labelled"));
    try {
      for (const agent of agents) assert.equal((await postReview(webhook.server.port, webhook.ca, VALIDATE_IDENTITY_PATH, body, agent)).status, 200);
      await assert.rejects(postReview(webhook.server.port, webhook.ca, VALIDATE_IDENTITY_PATH, body, false), /socket hang up|ECONNRESET|disconnected/);
      assert.equal(await counterValue(webhook, "azuremsi_webhook_refused_total", { reason: "connections" }), 1);
      const next = await eventually(
        () => postReview(webhook.server.port, webhook.ca, VALIDATE_IDENTITY_PATH, body, false).catch(() => undefined),
        5_000,
        "a connection after the idle ones were closed",
      );
      assert.equal(next.status, 200);
    } finally {
      for (const agent of agents) agent.destroy();
    }
  });
});
