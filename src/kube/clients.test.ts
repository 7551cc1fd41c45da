// Request deadlines against real local servers that never answer (a black hole: connections accepted,
// nothing sent back, nothing reset), the fault TCP cannot report. Issue 22 item 6: against f48d249
// these requests hang for ever (each test then ends at the runner's timeout).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { abortable, kubeClients, RequestTimeoutError } from "./clients.js";

function kubeConfigFor(port: number): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kubeConfig;
}

async function listen(server: Server | HttpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

describe("every Kubernetes request has a deadline", { timeout: 20_000 }, () => {
  const sockets = new Set<Socket>();
  /** Accepts every connection and never sends a byte. */
  const hole = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // Read (and drop) what comes, so the client's close is seen.
    socket.resume();
  });
  /** Answers the status line and headers, then goes silent in the middle of the body. */
  const stalling = createHttpServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.write('{"kind":"NamespaceList","items":[');
  });
  let holePort = 0;
  let stallingPort = 0;

  before(async () => {
    holePort = await listen(hole);
    stallingPort = await listen(stalling);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    stalling.closeAllConnections();
    await Promise.all([new Promise((resolve) => hole.close(resolve)), new Promise((resolve) => stalling.close(resolve))]);
  });

  test("no answer at all: the request fails with RequestTimeoutError at its deadline, and its connection is closed", async () => {
    const { core } = kubeClients(kubeConfigFor(holePort), 150);
    const closed = new Promise((resolve) => hole.once("connection", (socket: Socket) => socket.once("close", resolve)));
    const started = performance.now();
    await assert.rejects(core.listNamespace(), (error: unknown) => {
      assert.ok(error instanceof RequestTimeoutError, String(error));
      assert.match(error.message, /^GET \/api\/v1\/namespaces: no answer within 150 ms$/);
      return true;
    });
    assert.ok(performance.now() - started >= 140, "not before the deadline");
    // The connection is given up, not left open on the black hole.
    await closed;
  });

  test("headers, then silence: the body read fails at the same deadline", async () => {
    const { core } = kubeClients(kubeConfigFor(stallingPort), 150);
    await assert.rejects(core.listNamespace(), RequestTimeoutError);
  });

  test("abortable(signal): the caller's signal ends the request before the deadline, with its reason", async () => {
    const { coordination } = kubeClients(kubeConfigFor(holePort), 60_000);
    const controller = new AbortController();
    const connected = new Promise((resolve) => hole.once("connection", resolve));
    const reading = coordination.readNamespacedLease({ name: "l", namespace: "n" }, abortable(controller.signal));
    // Abort once the request is on the wire (the black hole has its connection), not before.
    await connected;
    controller.abort(new Error("term over"));
    await assert.rejects(reading, /term over/);
  });
});
