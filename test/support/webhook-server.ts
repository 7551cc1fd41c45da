// The webhook HTTPS server started in-process for tests: a serving certificate from the test CA,
// a policy with an in-memory "cache", and a small HTTPS client that returns whatever came back.
import { type Agent, request } from "node:https";
import pino, { type Logger } from "pino";
import { issueCert } from "../../certs/pki.js";
import { lookupLabelKeys } from "../../src/kube/lookup.js";
import type { AzureIdentity } from "../../src/kube/resources.js";
import { Metrics } from "../../src/metrics/metrics.js";
import type { ServiceAccountPolicy } from "../../src/webhook/decide-serviceaccount.js";
import { startWebhookServer, type WebhookServer } from "../../src/webhook/server.js";
import { ensureTestCa } from "./test-ca.js";

export const TEST_OPERATOR_USER = "system:serviceaccount:op:op";
export const TEST_MIC_USER = "system:serviceaccount:default:aad-pod-id-mic-service-account";
export const TEST_LOOKUP_KEYS = lookupLabelKeys("msi.azure.k8s.io/%s")!;

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface PostOptions {
  contentType?: string | undefined;
  method?: string;
  /** Sent as several writes (chunked transfer encoding, no Content-Length). */
  chunked?: boolean;
  agent?: Agent;
}

export interface TestWebhook {
  server: WebhookServer;
  /** The test CA's certificate (PEM), which issued the serving certificate. */
  ca: string;
  metrics: Metrics;
  post(path: string, body: string | Buffer, options?: PostOptions): Promise<Answer>;
  close(): Promise<void>;
}

export interface TestWebhookOptions {
  /** The operator-owned identities the mutating webhook sees per namespace. */
  identitiesIn?: (namespace: string) => readonly AzureIdentity[];
  strict?: boolean;
  /** The workload identity mode's ServiceAccount webhooks (on, with TEST_LOOKUP_KEYS and identitiesIn, unless changed); absent: off. */
  serviceAccounts?: Partial<ServiceAccountPolicy>;
  /** Where the server logs; silent unless given. */
  log?: Logger;
  inflightBytes?: number;
  maxConnections?: number;
}

export async function startTestWebhook(options: TestWebhookOptions = {}): Promise<TestWebhook> {
  const testCa = await ensureTestCa();
  const tls = await issueCert(testCa, { commonName: "webhook", usage: "server", ipAddresses: ["127.0.0.1"], validityMs: 3_600_000 });
  const metrics = new Metrics({ defaultMetrics: false });
  const server = await startWebhookServer({
    host: "127.0.0.1",
    port: 0,
    tls,
    guardPolicy: {
      operatorUser: TEST_OPERATOR_USER,
      adminUsers: new Set(),
      adminGroups: new Set(["system:masters"]),
      micUsers: new Set([TEST_MIC_USER]),
      namespaceTags: ["k8snamespace"],
    },
    bindingPolicy: {
      lookupKeys: TEST_LOOKUP_KEYS,
      strict: options.strict ?? false,
      identitiesIn: options.identitiesIn ?? (() => []),
      namespaceTags: ["k8snamespace"],
    },
    ...(options.serviceAccounts
      ? {
          serviceAccountPolicy: {
            enable: true,
            strict: false,
            lookupKeys: TEST_LOOKUP_KEYS,
            identitiesIn: options.identitiesIn ?? (() => []),
            allIdentities: () => [],
            namespaceTags: ["k8snamespace"],
            ...options.serviceAccounts,
          },
        }
      : {}),
    metrics,
    log: options.log ?? pino({ level: "silent" }),
    ...(options.inflightBytes !== undefined ? { inflightBytes: options.inflightBytes } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
  });
  const post = (path: string, body: string | Buffer, postOptions: PostOptions = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const contentType = "contentType" in postOptions ? postOptions.contentType : "application/json";
      const chunked = postOptions.chunked === true && body.length > 1;
      // Explicit, because Node's client sends a GET/DELETE/OPTIONS body unframed (no Content-Length).
      const headers: Record<string, string | number> = chunked ? { "transfer-encoding": "chunked" } : { "content-length": Buffer.byteLength(body) };
      if (contentType !== undefined) headers["content-type"] = contentType;
      const req = request(
        { host: "127.0.0.1", port: server.port, path, method: postOptions.method ?? "POST", ca: testCa.cert, headers, agent: postOptions.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      if (chunked) {
        const middle = Math.floor(body.length / 2);
        req.write(body.slice(0, middle));
        req.end(body.slice(middle));
      } else {
        req.end(body);
      }
    });
  return { server, ca: testCa.cert, metrics, post, close: () => server.close() };
}
