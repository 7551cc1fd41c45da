import { Writable } from "node:stream";
import pino from "pino";
import type { App } from "../../src/app.js";
import { parseConfig, type Config } from "../../src/config/config.js";
import type { Metrics } from "../../src/metrics/metrics.js";
import { createOperator } from "../../src/operator.js";
import { OPERATOR_NAMESPACE, OPERATOR_USER, type AuditEvent, type ControlPlane } from "../controlplane/controlplane.js";
import { MANIFESTS_DIR } from "./manifests.js";

export interface RunningOperator {
  app: App;
  config: Config;
  metrics: Metrics;
  /** Every log line, parsed. */
  logs: Record<string, unknown>[];
  stop: () => Promise<void>;
}

/** The operator's RBAC from manifests/, exactly, applied as the admin. */
export async function applyOperatorRbac(plane: ControlPlane): Promise<void> {
  await plane.kubectlOrThrow("admin", ["apply", "-f", `${MANIFESTS_DIR}rbac.yaml`]);
}

/**
 * The operator in this test process, as its service account (token kubeconfig, RBAC from
 * manifests/), talking to the Azure fake through the real SDK. DefaultAzureCredential reads
 * process.env, so the fake's credential env is put there.
 */
export async function startOperator(
  plane: ControlPlane,
  azureEnv: Record<string, string>,
  flags: string[],
  options: {
    start?: boolean;
    watchTimeoutSeconds?: number;
    certCheckIntervalMs?: number;
    azureAttemptTimeoutMs?: number;
    /** Another kubeconfig for the service account, e.g. through a TcpProxy. */ kubeconfig?: string;
  } = {},
): Promise<RunningOperator> {
  Object.assign(process.env, azureEnv);
  const env = { ...process.env, INSTANCE_NAMESPACE: OPERATOR_NAMESPACE };
  const parsed = parseConfig(["--kubeconfig", options.kubeconfig ?? plane.kubeconfigPath("operator"), "--server.bind=127.0.0.1:0", ...flags], env);
  if (!parsed.ok) throw new Error(parsed.help ? "help requested" : parsed.error);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  const { app, metrics } = await createOperator(parsed.config, env, {
    log,
    azureRetry: { maxRetries: 2, retryDelayInMs: 50, maxRetryDelayInMs: 2_000 },
    ...(options.watchTimeoutSeconds ? { watchTimeoutSeconds: options.watchTimeoutSeconds } : {}),
    ...(options.certCheckIntervalMs ? { certCheckIntervalMs: options.certCheckIntervalMs } : {}),
    ...(options.azureAttemptTimeoutMs ? { azureAttemptTimeoutMs: options.azureAttemptTimeoutMs } : {}),
  });
  if (options.start ?? true) await app.start();
  return { app, config: parsed.config, metrics, logs, stop: () => app.shutdown(0) };
}

const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

/** Writes the operator made to AzureIdentities and bindings, from the API server's audit log. */
export function operatorWrites(events: AuditEvent[], since = 0): AuditEvent[] {
  return events.filter(
    (event) =>
      Date.parse(event.requestReceivedTimestamp) >= since &&
      event.user.username === OPERATOR_USER &&
      WRITE_VERBS.has(event.verb) &&
      (event.objectRef?.resource === "azureidentities" || event.objectRef?.resource === "azureidentitybindings"),
  );
}

export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
