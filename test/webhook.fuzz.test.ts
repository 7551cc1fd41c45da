// Fuzzing the admission webhook server in-process: thousands of generated requests (fast-check) to
// every endpoint, and slow-loris clients on raw sockets. Every answer is a well-formed AdmissionReview
// answer or a 4xx with a JSON message; never a 5xx, never a dropped connection; memory returns.
// FUZZ_RUNS=100000 makes it a soak run; FUZZ_SEED replays one.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Agent } from "node:https";
import { connect as connectTcp, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { loadReview } from "../src/webhook/fixtures.js";
import { MUTATE_BINDING_PATH, VALIDATE_IDENTITY_PATH } from "../src/webhook/server.js";
import { allIdentities, fuzzCase, identitiesIn, judge, type FuzzCase } from "./support/admission-fuzz.js";
import { startTestWebhook, type Answer, type TestWebhook } from "./support/webhook-server.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const SEED = process.env.FUZZ_SEED === undefined ? Date.now() : Number(process.env.FUZZ_SEED);
const WORKERS = 4;
/** Heap + Buffer memory may grow this much over the run (the bodies sent add up to hundreds of MiB). */
const MEMORY_BOUND = 50 * 1024 * 1024;
/** The server's timeouts are 10 s; a slow client must be cut off well before this. */
const SLOW_CLIENT_CUT_BOUND_MS = 30_000;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

async function settledMemory(): Promise<NodeJS.MemoryUsage> {
  for (let round = 0; round < 4; round++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage();
}

const MiB = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

// The two tests run at the same time: slow clients hold connections while the fuzzer is answered.
describe("webhook server under fuzzing and slow clients", { concurrency: true }, () => {
  let webhook: TestWebhook;

  before(async () => {
    // The workload identity mode on, so the ServiceAccount webhooks decide rather than wave through.
    // Room for every worker's near-limit body at once: here each must be answered with what its body
    // deserves; refusing bodies past the in-flight budget has its own test (src/webhook/flood.test.ts).
    webhook = await startTestWebhook({ identitiesIn, serviceAccounts: { allIdentities }, inflightBytes: 64 * 1024 * 1024 });
  });
  after(async () => webhook?.close());

  const validAnswered = async (agent?: Agent): Promise<Answer> => {
    const review = loadReview("binding-create-labelled");
    const answer = await webhook.post(MUTATE_BINDING_PATH, JSON.stringify(review), agent ? { agent } : { agent: new Agent({ keepAlive: false }) });
    assert.equal(answer.status, 200, answer.body);
    assert.equal((JSON.parse(answer.body) as { response: { uid: string } }).response.uid, review.request.uid);
    return answer;
  };

  test(
    `${RUNS} generated requests: only review answers and clear 4xx, no 5xx, no dropped connection, no leak`,
    { timeout: Math.max(180_000, RUNS * 20) },
    async (t) => {
      const agent = new Agent({ keepAlive: true, maxSockets: WORKERS });
      const byCategory = new Map<string, { requests: number; statuses: Map<number, number> }>();
      let requests = 0;
      let serverErrors = 0;
      let noAnswer = 0;
      const send = async (fuzz: FuzzCase): Promise<void> => {
        let answer: Answer;
        try {
          answer = await webhook.post(fuzz.path, fuzz.body(), { contentType: fuzz.contentType, method: fuzz.method, chunked: fuzz.chunked, agent });
        } catch (error) {
          noAnswer++;
          throw new Error(`no answer: ${(error as Error).message}`, { cause: error });
        }
        requests++;
        if (answer.status >= 500) serverErrors++;
        const tally = byCategory.get(fuzz.category) ?? { requests: 0, statuses: new Map<number, number>() };
        tally.requests++;
        tally.statuses.set(answer.status, (tally.statuses.get(answer.status) ?? 0) + 1);
        byCategory.set(fuzz.category, tally);
        const problems = judge(fuzz, answer);
        if (problems.length > 0) throw new Error(problems.join("; "));
      };

      // Warm up (JIT, Ajv's compiled schema, TLS sessions) before the baseline is taken.
      await fc.assert(fc.asyncProperty(fuzzCase, send), { numRuns: 300, seed: SEED - 1, includeErrorInReport: true });
      const baseline = await settledMemory();
      const started = Date.now();
      requests = 0;
      byCategory.clear();

      // Parallel workers, like the API server's pooled connections; each reports its own seed on failure.
      await Promise.all(
        Array.from({ length: WORKERS }, (_, worker) =>
          fc.assert(fc.asyncProperty(fuzzCase, send), { numRuns: Math.ceil(RUNS / WORKERS), seed: SEED + worker, includeErrorInReport: true }),
        ),
      );
      const elapsedMs = Date.now() - started;
      agent.destroy();
      await validAnswered();
      const end = await settledMemory();

      const grew = end.heapUsed + end.external - (baseline.heapUsed + baseline.external);
      for (const [category, tally] of [...byCategory.entries()].sort()) {
        t.diagnostic(`${category}: ${tally.requests} requests, statuses ${JSON.stringify(Object.fromEntries(tally.statuses))}`);
      }
      t.diagnostic(`${requests} requests in ${elapsedMs} ms (seed ${SEED}); 5xx: ${serverErrors}; without answer: ${noAnswer}`);
      t.diagnostic(
        `heapUsed+external ${MiB(baseline.heapUsed + baseline.external)} -> ${MiB(end.heapUsed + end.external)} MiB; rss ${MiB(baseline.rss)} -> ${MiB(end.rss)} MiB`,
      );
      assert.ok(requests >= RUNS, `${requests} requests`);
      assert.equal(serverErrors, 0);
      assert.equal(noAnswer, 0);
      for (const category of ["valid", "wrong-type", "missing-field", "truncated", "random-json", "content-type", "near-limit", "deep"]) {
        assert.ok((byCategory.get(category)?.requests ?? 0) > 0, `no ${category} requests were generated`);
      }
      assert.ok(grew < MEMORY_BOUND, `heap + external memory grew by ${MiB(grew)} MiB`);
    },
  );

  test("slow-loris clients are cut off by the server's timeouts while others are served", { timeout: 120_000 }, async (t) => {
    const port = webhook.server.port;
    const clients: Promise<SlowClient>[] = [];
    const request = (contentLength: number) =>
      `POST ${VALIDATE_IDENTITY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n`;
    for (let index = 0; index < 5; index++) {
      // Headers one byte at a time, never finished.
      clients.push(
        slowClient(
          "headers-drip",
          "secureConnect",
          () => connectTls({ host: "127.0.0.1", port, ca: webhook.ca }),
          `POST ${MUTATE_BINDING_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n`,
          "x-slow: yes\r\n",
        ),
      );
      // Headers and a tenth of the body, then nothing.
      clients.push(
        slowClient(
          "body-stalled",
          "secureConnect",
          () => connectTls({ host: "127.0.0.1", port, ca: webhook.ca }),
          `${request(5_000)}{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",${" ".repeat(400)}`,
          undefined,
        ),
      );
      // A body of 100 kB at one byte per 300 ms: never idle, never done.
      clients.push(
        slowClient(
          "body-drip",
          "secureConnect",
          () => connectTls({ host: "127.0.0.1", port, ca: webhook.ca }),
          `${request(100_000)}{"apiVersion":"admission.k8s.io/v1",`,
          " ",
        ),
      );
      // TCP only: no TLS ClientHello at all, and half a ClientHello record.
      clients.push(slowClient("no-handshake", "connect", () => connectTcp({ host: "127.0.0.1", port }), "", undefined));
      clients.push(
        slowClient("half-handshake", "connect", () => connectTcp({ host: "127.0.0.1", port }), "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", undefined),
      );
    }
    // While 25 slow clients hold connections, others get their answers (fresh connections each).
    for (let index = 0; index < 30; index++) {
      await validAnswered();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const results = await Promise.all(clients);
    for (const kind of new Set(results.map((result) => result.kind))) {
      const times = results.filter((result) => result.kind === kind).map((result) => result.closedAfterMs);
      const statuses = results.filter((result) => result.kind === kind).map((result) => /^HTTP\/1\.1 (\d+)/.exec(result.received)?.[1] ?? "none");
      t.diagnostic(`${kind}: cut after ${Math.min(...times)}-${Math.max(...times)} ms; answers ${statuses.join(",")}`);
    }
    for (const result of results) {
      assert.ok(result.closedAfterMs < SLOW_CLIENT_CUT_BOUND_MS, `${result.kind} still connected after ${result.closedAfterMs} ms`);
      const status = /^HTTP\/1\.1 (\d+)/.exec(result.received)?.[1];
      if (status !== undefined) assert.match(status, /^4\d\d$/, `${result.kind}: ${result.received.slice(0, 200)}`);
    }
    await validAnswered();
  });
});

interface SlowClient {
  kind: string;
  /** From connect until the server closed the connection (or the bound passed). */
  closedAfterMs: number;
  received: string;
}

/** Connects, sends `prelude`, then one character of `drip` every 300 ms until the server hangs up. */
function slowClient(kind: string, connected: "connect" | "secureConnect", open: () => Socket, prelude: string, drip: string | undefined): Promise<SlowClient> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = open();
    let received = "";
    let dripped = 0;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ kind, closedAfterMs: Date.now() - started, received });
    };
    // Past the bound the test fails anyway; stop holding the connection.
    const giveUp = setTimeout(finish, SLOW_CLIENT_CUT_BOUND_MS + 5_000);
    socket.on(connected, () => {
      if (prelude) socket.write(prelude, "latin1");
      if (drip) timer = setInterval(() => socket.write(drip[dripped++ % drip.length]!), 300);
    });
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", finish);
  });
}
