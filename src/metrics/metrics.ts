import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { buildInfo, type BuildInfo } from "../version.js";

/** How the azurerm_* metrics behave; the Go original reads these from METRIC_AZURERM_* env vars. */
export interface AzureRmMetricOptions {
  requestEnabled: boolean;
  requestBuckets: number[];
  /** Label names kept on azurerm_api_request (the rest are dropped). */
  requestLabels: readonly AzureRmRequestLabel[];
  ratelimitEnabled: boolean;
  /** Reset azurerm_api_ratelimit after each scrape: a remaining-quota reading is only valid briefly. */
  ratelimitAutoreset: boolean;
}

export const AZURERM_REQUEST_LABELS = ["apiEndpoint", "routingRegion", "subscriptionID", "tenantID", "resourceProvider", "method", "statusCode"] as const;
export type AzureRmRequestLabel = (typeof AZURERM_REQUEST_LABELS)[number];

export const DEFAULT_AZURERM_OPTIONS: AzureRmMetricOptions = {
  requestEnabled: true,
  requestBuckets: [1, 2.5, 5, 10, 30, 60, 90, 120],
  requestLabels: AZURERM_REQUEST_LABELS,
  ratelimitEnabled: true,
  ratelimitAutoreset: true,
};

/**
 * Every metric of one app instance, in its own registry (no global state, so tests can run several
 * instances in one process). Names and labels of the Go original are kept as they were.
 */
export class Metrics {
  readonly registry = new Registry();

  // The Go original's sync metrics.
  readonly syncTime = new Gauge({
    name: "azuremsi_sync_time",
    help: "Azure MSI operator last sync time (unix timestamp) per subscription",
    labelNames: ["subscription"],
    registers: [this.registry],
  });
  readonly syncDuration = new Gauge({
    name: "azuremsi_sync_duration",
    help: "Azure MSI operator sync duration (seconds) per subscription",
    labelNames: ["subscription"],
    registers: [this.registry],
  });
  readonly resourceErrors = new Counter({
    name: "azuremsi_sync_resources_errors",
    help: "Azure MSI operator failed resource syncs",
    labelNames: ["subscription", "resource"],
    registers: [this.registry],
  });
  readonly resourceSuccess = new Counter({
    name: "azuremsi_sync_resources_success",
    help: "Azure MSI operator successful resource syncs",
    labelNames: ["subscription", "resource"],
    registers: [this.registry],
  });

  // Added by this operator.
  readonly syncRuns = new Counter({
    name: "azuremsi_sync_runs_total",
    help: "Full syncs by result (success, failed)",
    labelNames: ["result"],
    registers: [this.registry],
  });
  // Unlabelled, so 0 until the first full sync of that result in this process (prom-client's default).
  readonly syncLastSuccess = new Gauge({
    name: "azuremsi_sync_last_success_timestamp_seconds",
    help: "End (unix timestamp) of the last full sync that succeeded in this process; 0: none yet",
    registers: [this.registry],
  });
  readonly syncLastFailure = new Gauge({
    name: "azuremsi_sync_last_failure_timestamp_seconds",
    help: "End (unix timestamp) of the last full sync that failed in this process; 0: none yet",
    registers: [this.registry],
  });
  readonly syncInterval = new Gauge({
    name: "azuremsi_sync_interval_seconds",
    help: "The configured full sync interval (--sync.interval): alerts compare the last success with twice of it",
    registers: [this.registry],
  });
  readonly syncWrites = new Gauge({
    name: "azuremsi_sync_writes",
    help: "Kubernetes write requests made by the last full sync, by verb",
    labelNames: ["verb"],
    registers: [this.registry],
  });
  readonly kubeWrites = new Counter({
    name: "azuremsi_kube_writes_total",
    help: "Kubernetes write requests made by the syncer",
    labelNames: ["resource", "verb", "result"],
    registers: [this.registry],
  });
  readonly syncObjects = new Gauge({
    name: "azuremsi_sync_objects",
    help: "Outcome counts of the last full sync (created, updated, unchanged, deleted, skipped, errors)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  readonly msiSkipped = new Counter({
    name: "azuremsi_msi_skipped_total",
    help: "MSIs skipped because a rendered name, namespace or label value is invalid",
    labelNames: ["subscription"],
    registers: [this.registry],
  });
  readonly cacheObjects = new Gauge({
    name: "azuremsi_cache_objects",
    help: "Objects held in the informer caches",
    labelNames: ["resource"],
    registers: [this.registry],
  });
  readonly cacheRestarts = new Counter({
    name: "azuremsi_cache_restarts_total",
    help: "Informer restarts after watch or list errors",
    labelNames: ["resource"],
    registers: [this.registry],
  });

  readonly admissionRequests = new Counter({
    name: "azuremsi_admission_requests_total",
    help: "Admission requests by webhook, operation and result (allowed, denied, patched, unowned, error); every combination is exported from the start, at 0",
    labelNames: ["webhook", "operation", "result"],
    registers: [this.registry],
  });
  readonly admissionDuration = new Histogram({
    name: "azuremsi_admission_duration_seconds",
    help: "Admission request latency inside the webhook server, by webhook",
    labelNames: ["webhook"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly admissionUnowned = new Counter({
    name: "azuremsi_admission_unowned_total",
    help: 'Admission requests for resources this webhook does not own (a mis-scoped configuration); resources none of our webhooks is for count as resource="other"',
    labelNames: ["webhook", "resource"],
    registers: [this.registry],
  });
  readonly webhookRefused = new Counter({
    name: "azuremsi_webhook_refused_total",
    help:
      "Requests the webhook server refused unread: inflight (429, --webhook.inflight.mib of bodies already in flight), " +
      "connections (a connection dropped at --webhook.max.connections)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  /** What the webhook server holds in flight now; read at scrape time rather than set per request. */
  inflightBytes: () => number = () => 0;
  readonly webhookInflightBytes: Gauge = new Gauge({
    name: "azuremsi_webhook_inflight_bytes",
    help: "Bytes of admission requests in flight (declared bodies and a per-request overhead), bounded by --webhook.inflight.mib",
    registers: [this.registry],
    collect: () => this.webhookInflightBytes.set(this.inflightBytes()),
  });

  readonly admissionUnknownClientIds = new Counter({
    name: "azuremsi_admission_unknown_client_ids_total",
    help: "ServiceAccount writes naming an azure.workload.identity/client-id the operator does not know (an app registration, another tool's MSI), by result (allowed with a warning; denied with --workloadidentity.strict)",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly admissionWarned = new Counter({
    name: "azuremsi_admission_warned_total",
    help: "Admission requests a guard refused but --webhook.enforcement=warn let through, by webhook, operation and the refusal's result (denied, error)",
    labelNames: ["webhook", "operation", "result"],
    registers: [this.registry],
  });
  readonly auditViolations = new Gauge({
    name: "azuremsi_audit_violations",
    help: 'Violations the leader\'s last audit found, by kind (a fixed set) and namespace ("" when none exists); a series goes when its violations do',
    labelNames: ["kind", "namespace"],
    registers: [this.registry],
  });
  readonly auditRuns = new Counter({
    name: "azuremsi_audit_runs_total",
    help: "Audits after a full sync, by result (success; skipped: its caches had not synced; failed)",
    labelNames: ["result"],
    registers: [this.registry],
  });

  readonly namespacedIdentities = new Gauge({
    name: "azuremsi_identities_namespaced",
    help: "1 when identities carry aadpodidentity.k8s.io/Behavior: namespaced; 0: MIC matches them to pods of every namespace through a binding's selector",
    registers: [this.registry],
  });

  readonly ficWrites = new Counter({
    name: "azuremsi_fic_writes_total",
    help: "Federated identity credential writes to Azure (workload identity mode), by verb and result",
    labelNames: ["verb", "result"],
    registers: [this.registry],
  });
  readonly ficSkipped = new Counter({
    name: "azuremsi_fic_skipped_total",
    help: "Federated identity credentials not made, by reason (limit: Azure's 20 per MSI; share: the namespace's fair share of them is used up while others ask; cap: --workloadidentity.fic.namespacecap; conflict: the name is taken by another issuer)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly ficObjects = new Gauge({
    name: "azuremsi_fic_objects",
    help: "Outcome counts of the last federated identity credential pass (created, updated, unchanged, deleted, skipped, errors)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });

  // Labelled by the pods' namespace: a Prometheus scrape keeps its own `namespace` (the operator's)
  // and stores this one as `exported_namespace` unless the scrape honours labels.
  readonly podIdentityPods = new Gauge({
    name: "azuremsi_pod_identity_pods",
    help: "Pods still on aad-pod-identity (carrying the aadpodidbinding label, not finished) per namespace, counted by the leader after each full sync; a namespace with none has no series",
    labelNames: ["namespace"],
    registers: [this.registry],
  });
  /** Namespaces with a azuremsi_pod_identity_pods series now. */
  private podIdentityNamespaces = new Set<string>();

  readonly leader = new Gauge({ name: "azuremsi_leader", help: "1 while this instance holds the leader Lease", registers: [this.registry] });
  readonly leaderTransitions = new Counter({
    name: "azuremsi_leader_transitions_total",
    help: "Times this instance gained or lost leadership",
    labelNames: ["event"],
    registers: [this.registry],
  });

  readonly certificateExpiry = new Gauge({
    name: "azuremsi_webhook_certificate_expiry_timestamp_seconds",
    help: "Expiry (unix timestamp) of the webhook's CA and serving certificate",
    labelNames: ["certificate"],
    registers: [this.registry],
  });
  readonly certificateRotations = new Counter({
    name: "azuremsi_webhook_certificate_rotations_total",
    help: "Certificate rotations performed by the leader",
    registers: [this.registry],
  });

  readonly events = new Counter({
    name: "azuremsi_events_total",
    help: "Kubernetes Events by outcome (created, patched: a repeat's count; dropped: over the Event rate limit; failed)",
    labelNames: ["outcome"],
    registers: [this.registry],
  });

  // The Prometheus convention for what is running (as Go programs' *_build_info): constant 1, the build in labels.
  readonly buildInfo = new Gauge<keyof BuildInfo>({
    name: "azuremsi_build_info",
    help: "Always 1; labels: the operator's version, the git revision it was built from, the Node version it runs on",
    labelNames: ["version", "revision", "node"],
    registers: [this.registry],
  });

  readonly azureRequest: Histogram<AzureRmRequestLabel> | undefined;
  readonly azureRatelimit: Gauge<"apiEndpoint" | "subscriptionID" | "tenantID" | "scope" | "type"> | undefined;
  private readonly azureOptions: AzureRmMetricOptions;

  constructor(options: { azurerm?: AzureRmMetricOptions; defaultMetrics?: boolean } = {}) {
    this.buildInfo.set({ ...buildInfo() }, 1);
    this.azureOptions = options.azurerm ?? DEFAULT_AZURERM_OPTIONS;
    if (this.azureOptions.requestEnabled) {
      this.azureRequest = new Histogram({
        name: "azurerm_api_request",
        help: "AzureRM API requests",
        labelNames: [...this.azureOptions.requestLabels],
        buckets: this.azureOptions.requestBuckets,
        registers: [this.registry],
      });
    }
    if (this.azureOptions.ratelimitEnabled) {
      this.azureRatelimit = new Gauge({
        name: "azurerm_api_ratelimit",
        help: "AzureRM API ratelimit",
        labelNames: ["apiEndpoint", "subscriptionID", "tenantID", "scope", "type"],
        registers: [this.registry],
      });
    }
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** One finished full sync: counted by result, and its end time kept for staleness and failure alerts. */
  recordSyncRun(result: "success" | "failed", endedAtMs = Date.now()): void {
    this.syncRuns.inc({ result });
    (result === "success" ? this.syncLastSuccess : this.syncLastFailure).set(endedAtMs / 1000);
  }

  /** The pods still on pod identity, per namespace: a namespace no longer counted loses its series, so the labels stay bounded. */
  recordPodIdentityPods(counts: ReadonlyMap<string, number>): void {
    for (const namespace of this.podIdentityNamespaces) if (!counts.has(namespace)) this.podIdentityPods.remove({ namespace });
    for (const [namespace, count] of counts) this.podIdentityPods.set({ namespace }, count);
    this.podIdentityNamespaces = new Set(counts.keys());
  }

  /** Records one Azure API call with the labels this instance keeps. */
  observeAzureRequest(labels: Record<AzureRmRequestLabel, string>, seconds: number): void {
    if (!this.azureRequest) return;
    const kept = Object.fromEntries(this.azureOptions.requestLabels.map((name) => [name, labels[name]])) as Record<AzureRmRequestLabel, string>;
    this.azureRequest.observe(kept, seconds);
  }

  /** The exposition text; resets azurerm_api_ratelimit afterwards when autoreset is on. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const body = await this.registry.metrics();
    if (this.azureRatelimit && this.azureOptions.ratelimitAutoreset) this.azureRatelimit.reset();
    return { contentType: this.registry.contentType, body };
  }
}

/** The Go original's METRIC_AZURERM_* switches, parsed the way it parses them. */
export function azureRmOptionsFromEnv(env: Record<string, string | undefined>): { ok: true; options: AzureRmMetricOptions } | { ok: false; error: string } {
  const options = { ...DEFAULT_AZURERM_OPTIONS };
  const buckets = env.METRIC_AZURERM_API_REQUEST_BUCKETS;
  if (buckets !== undefined && buckets.trim() !== "") {
    const parsed = buckets.split(",").map((part) => Number(part.trim()));
    if (parsed.some((value) => !Number.isFinite(value)))
      return { ok: false, error: `invalid value "${buckets}" for METRIC_AZURERM_API_REQUEST_BUCKETS: expected comma-separated numbers such as "1, 2.5, 5"` };
    options.requestBuckets = parsed;
  }
  const labels = env.METRIC_AZURERM_API_REQUEST_LABELS;
  if (labels !== undefined && labels.trim() !== "") {
    const parsed = labels.split(/[\s,]+/).filter((label) => label !== "");
    const unknown = parsed.filter((label) => !(AZURERM_REQUEST_LABELS as readonly string[]).includes(label));
    if (unknown.length > 0)
      return {
        ok: false,
        error:
          `invalid value "${labels}" for METRIC_AZURERM_API_REQUEST_LABELS: unknown label ${unknown.join(", ")} ` +
          `(known: ${AZURERM_REQUEST_LABELS.join(", ")})`,
      };
    options.requestLabels = parsed as AzureRmRequestLabel[];
  }
  options.requestEnabled = envSwitch(env.METRIC_AZURERM_API_REQUEST_ENABLE, options.requestEnabled);
  options.ratelimitEnabled = envSwitch(env.METRIC_AZURERM_API_RATELIMIT_ENABLE, options.ratelimitEnabled);
  options.ratelimitAutoreset = envSwitch(env.METRIC_AZURERM_API_RATELIMIT_AUTORESET, options.ratelimitAutoreset);
  return { ok: true, options };
}

function envSwitch(value: string | undefined, fallback: boolean): boolean {
  switch (value?.trim().toLowerCase()) {
    case "1":
    case "true":
    case "yes":
    case "enabled":
      return true;
    case "0":
    case "false":
    case "no":
    case "disabled":
      return false;
    default:
      return fallback;
  }
}
