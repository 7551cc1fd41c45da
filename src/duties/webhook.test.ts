// The webhook duty's two ways to end that issue 22 found broken, with real files, a real port and a
// real HTTPS server (no control plane: the identity cache is never started, admission is not called).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { generateCa, issueCert } from "../../certs/pki.js";
import { FileCertSource } from "../../certs/sources.js";
import { parseConfig, type Config } from "../config/config.js";
import { Informer } from "../kube/informer.js";
import type { AzureIdentity } from "../kube/resources.js";
import { Metrics } from "../metrics/metrics.js";
import { ListenError } from "./listen.js";
import { WebhookDuty } from "./webhook.js";

const silent = pino({ level: "silent" });

function configFor(bind: string): Config {
  const parsed = parseConfig(["run", `--webhook.bind=${bind}`, "--instance.namespace=ns"], {});
  if (!parsed.ok) throw new Error(parsed.help ? "help" : parsed.error);
  return parsed.config;
}

function duty(config: Config, certFile: string, keyFile: string, onFatal: (error: Error) => void): WebhookDuty {
  const identities = new Informer<AzureIdentity>(new KubeConfig(), { path: "/unused", list: () => Promise.reject(new Error("not started")) });
  const source = new FileCertSource(certFile, keyFile, silent, 50);
  const guard = () => ({
    operatorUser: "operator",
    adminUsers: new Set<string>(),
    adminGroups: new Set<string>(),
    micUsers: new Set<string>(),
    namespaceTags: config.azureIdentity.namespaceTemplate.tags,
  });
  return new WebhookDuty(config, source, identities, guard, new Metrics({ defaultMetrics: false }), silent, onFatal);
}

describe("WebhookDuty: stop without a certificate, and a port it cannot listen on", { timeout: 20_000 }, () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;
  let occupier: Server;
  let occupied = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "amo-webhook-duty-"));
    certFile = join(dir, "tls.crt");
    keyFile = join(dir, "tls.key");
    const ca = await generateCa("webhook duty test", 3_600_000);
    const leaf = await issueCert(ca, { commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"], usage: "server", validityMs: 3_600_000 });
    await writeFile(certFile, leaf.cert);
    await writeFile(keyFile, leaf.key);
    occupier = createServer();
    await new Promise<void>((resolve) => occupier.listen(0, "127.0.0.1", resolve));
    occupied = (occupier.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise((resolve) => occupier.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  // Issue 22 item 4: against f48d249 stop() waited for ready(), which nothing released, for ever.
  test("stop() resolves while no serving certificate has loaded, and reports nothing as failed", async () => {
    const fatal: Error[] = [];
    const webhook = duty(configFor("127.0.0.1:0"), join(dir, "absent.crt"), join(dir, "absent.key"), (error) => fatal.push(error));
    await webhook.start();
    await webhook.stop();
    assert.equal(webhook.loaded, false);
    assert.deepEqual(fatal, []);
  });

  // Issue 22 item 10: against f48d249 the failure was only logged (the pod stayed NotReady for ever,
  // /healthz green); now it reaches onFatal, on which main exits non-zero.
  test("a port in use is fatal, with one message naming the server and the address", async () => {
    let fatal: (error: Error) => void = () => undefined;
    const failed = new Promise<Error>((resolve) => (fatal = resolve));
    const webhook = duty(configFor(`127.0.0.1:${occupied}`), certFile, keyFile, (error) => fatal(error));
    await webhook.start();
    try {
      const error = await failed;
      assert.ok(error instanceof ListenError, String(error));
      assert.equal(error.message, `webhook server (--webhook.bind) cannot listen on 127.0.0.1:${occupied}: address already in use`);
      assert.equal(webhook.loaded, false);
    } finally {
      await webhook.stop();
    }
  });

  test("a free port serves; stop() closes it", async () => {
    const fatal: Error[] = [];
    const webhook = duty(configFor("127.0.0.1:0"), certFile, keyFile, (error) => fatal.push(error));
    await webhook.start();
    // Serving is the event: the certificate loaded and the server listens.
    while (!webhook.loaded) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok((webhook.port ?? 0) > 0);
    await webhook.stop();
    assert.equal(webhook.loaded, false);
    assert.deepEqual(fatal, []);
  });
});
