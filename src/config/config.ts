// The one typed configuration, parsed once from argv + env. Pure: the caller passes in what would
// need I/O (the service-account namespace) and decides what to print and how to exit.
import { invalidLabelKey, invalidNamespaceName, invalidObjectName } from "../kube/validation.js";
import type { CompiledTemplate } from "../template/template.js";
import { scanArgv } from "./argv.js";
import type { Command } from "./flags.js";
import { formatDuration } from "./duration.js";
import { buildInfo, renderVersion } from "../version.js";
import { renderHelp } from "./help.js";
import { ConfigError, FlagReader, type Env } from "./reader.js";
import type { TimeLayout } from "./timelayout.js";
import { checkLabelFormat, checkSan, type ListenAddress, type RotationPolicy } from "./values.js";

export interface Config {
  /** run: sync and serve the webhooks; sync: only sync. */
  command: Command;
  /** With `sync`: one full sync, then exit. */
  once: boolean;
  /** With `diff`, `audit` and `migrate`: how the result is printed. */
  output: "text" | "json";
  log: { debug: boolean; json: boolean };
  instance: { nodeName: string | undefined; namespace: string; pod: string | undefined; podUid: string | undefined };
  lease: { enable: boolean; name: string; durationMs: number; renewDeadlineMs: number; retryPeriodMs: number };
  sync: { intervalMs: number; watch: boolean; lockTimeMs: number; concurrency: number; requestIntervalMs: number };
  /** The Event recorder's rate limit and series refresh. */
  events: { burst: number; perMinute: number; refreshMs: number };
  azure: { environment: string; subscriptions: readonly string[] };
  kubernetes: {
    /** Undefined: in-cluster (or the client's own discovery). */
    kubeconfig: string | undefined;
    /** Empty: no lookup labels. */
    labelFormat: string;
    /** Lower-cased. */
    namespaceIgnore: readonly string[];
  };
  azureIdentity: {
    namespaced: boolean;
    namespaceTemplate: CompiledTemplate;
    resourceNameTemplate: CompiledTemplate;
    bindingSync: boolean;
    prune: boolean;
    expiry: { enable: boolean; annotation: string; durationMs: number; timeFormat: TimeLayout };
  };
  server: { bind: ListenAddress; readTimeoutMs: number; writeTimeoutMs: number };
  shutdown: { delayMs: number };
  workloadIdentity: {
    enable: boolean;
    /** Undefined: discovered from the API server at start-up. */
    issuer: string | undefined;
    /** Undefined: derived from the issuer. Lower-case letters, digits and dashes. */
    cluster: string | undefined;
    /** Earlier names of this cluster (a rename): FICs named under them are still this cluster's. */
    previousClusters: readonly string[];
    /** Also refuses client IDs the operator does not know (not only another namespace's MSI). */
    strict: boolean;
    /** At most this many FICs per namespace on one MSI; 0: only the fair share limits a namespace. */
    ficNamespaceCap: number;
  };
  /** The leader's audit after every full sync (and the `audit` command's rules). */
  audit: { enable: boolean; micForceNamespaced: boolean; micManagers: readonly string[] };
  webhook: {
    enable: boolean;
    /** deny: refuse; warn: allow what would be refused, with a warning (a first rollout). */
    enforcement: "deny" | "warn";
    bind: ListenAddress;
    allowUsers: readonly string[];
    allowGroups: readonly string[];
    /** MIC's service accounts (AzureAssignedIdentity writers). */
    allowMic: readonly string[];
    bindingStrict: boolean;
    /** Bytes of admission bodies (declared) held at once. */
    inflightBytes: number;
    maxConnections: number;
    serviceName: string;
    validatingConfigName: string;
    mutatingConfigName: string;
    tls: {
      /** Bring-your-own certificate files; undefined: the operator manages CA and certificate. */
      files: { certFile: string; keyFile: string } | undefined;
      sans: readonly string[];
      secretName: string;
      certValidityMs: number;
      rotate: RotationPolicy;
      caValidityMs: number;
    };
  };
}

/** What parsing needs from outside and cannot read itself without I/O. */
export interface ConfigContext {
  /** Contents of the in-cluster service-account namespace file, when present. */
  serviceAccountNamespace?: string | undefined;
}

/** `help: true` is `--help` or `--version`: `text` goes to stdout, and the process exits 0. */
export type ParseResult =
  { ok: true; config: Config } | { ok: false; help: true; text: string; exitCode: 0 } | { ok: false; help: false; error: string; exitCode: 2 };

export function parseConfig(argv: readonly string[], env: Env, context: ConfigContext = {}): ParseResult {
  const scanned = scanArgv(argv);
  if (!scanned.ok) return { ok: false, help: false, error: scanned.error, exitCode: 2 };
  if (scanned.help) return { ok: false, help: true, text: renderHelp(), exitCode: 0 };
  if (scanned.version) return { ok: false, help: true, text: renderVersion(buildInfo()), exitCode: 0 };
  try {
    const config = buildConfig(new FlagReader(scanned.values, env), scanned.command, context);
    return { ok: true, config };
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, help: false, error: error.message, exitCode: 2 };
    throw error;
  }
}

/** Reads every flag of the table into the typed config; exported for the table-coverage test. */
export function buildConfig(r: FlagReader, command: Command, context: ConfigContext): Config {
  const once = r.bool("once");
  if (once && command !== "sync") throw new ConfigError("--once only works with the sync command (azure-msi-operator sync --once)");
  const output = r.string("output") ?? "text";
  r.check("output", output, output === "text" || output === "json" ? undefined : "must be text or json");
  if (output !== "text" && command !== "diff" && command !== "audit" && command !== "migrate")
    throw new ConfigError("--output only works with the diff, audit and migrate commands (azure-msi-operator diff --output=json)");
  const kubernetes = readKubernetes(r);
  const azureIdentity = readAzureIdentity(r);
  const lease = readLease(r);
  const webhook = readWebhook(r);
  return {
    command,
    once,
    output: output === "json" ? "json" : "text",
    // zap's development config, which the Go original's --log.devel selects, logs at debug level.
    log: { debug: r.bool("log.debug") || r.bool("log.devel"), json: r.bool("log.json") },
    instance: {
      nodeName: nonEmpty(r.string("instance.nodename")),
      namespace: nonEmpty(r.string("instance.namespace")) ?? nonEmpty(context.serviceAccountNamespace) ?? "default",
      pod: nonEmpty(r.string("instance.pod")),
      podUid: nonEmpty(r.string("instance.poduid")),
    },
    lease,
    sync: {
      intervalMs: r.duration("sync.interval"),
      watch: r.bool("sync.watch"),
      lockTimeMs: r.duration("sync.locktime"),
      concurrency: r.int("sync.concurrency"),
      requestIntervalMs: r.duration("sync.request.interval"),
    },
    events: { burst: r.int("events.burst"), perMinute: r.int("events.rate"), refreshMs: r.duration("events.refresh") },
    azure: { environment: r.string("azure.environment") ?? "", subscriptions: r.list("azure.subscription") },
    kubernetes,
    azureIdentity,
    server: { bind: r.address("server.bind"), readTimeoutMs: r.duration("server.timeout.read"), writeTimeoutMs: r.duration("server.timeout.write") },
    shutdown: { delayMs: r.duration("shutdown.delay") },
    webhook,
    workloadIdentity: readWorkloadIdentity(r),
    audit: { enable: r.bool("audit.enable"), micForceNamespaced: r.bool("audit.mic.forcenamespaced"), micManagers: r.list("audit.mic.managers") },
  };
}

function readWorkloadIdentity(r: FlagReader): Config["workloadIdentity"] {
  const issuer = nonEmpty(r.string("workloadidentity.issuer"));
  if (issuer !== undefined)
    r.check("workloadidentity.issuer", issuer, /^https:\/\/[^\s]+$/.test(issuer) ? undefined : "must be an https URL (Azure requires it)");
  const cluster = nonEmpty(r.string("workloadidentity.cluster"));
  if (cluster !== undefined) {
    r.check(
      "workloadidentity.cluster",
      cluster,
      /^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$/.test(cluster) ? undefined : "must be 1 to 24 lower-case letters, digits and dashes",
    );
  }
  const previousClusters = r
    .list("workloadidentity.cluster.previous")
    .map((name) => name.trim())
    .filter((name) => name !== "");
  for (const name of previousClusters)
    r.check("workloadidentity.cluster.previous", name, /^[A-Za-z0-9-]{1,24}$/.test(name) ? undefined : "must be 1 to 24 letters, digits and dashes");
  return {
    enable: r.bool("workloadidentity.enable"),
    issuer,
    cluster,
    previousClusters,
    strict: r.bool("workloadidentity.strict"),
    ficNamespaceCap: r.int("workloadidentity.fic.namespacecap"),
  };
}

const nonEmpty = (value: string | undefined) => (value === undefined || value.trim() === "" ? undefined : value.trim());

function readKubernetes(r: FlagReader): Config["kubernetes"] {
  const labelFormat = r.string("kubernetes.label.format") ?? "";
  // The longest key it makes must be a valid label key.
  r.check(
    "kubernetes.label.format",
    labelFormat,
    checkLabelFormat(labelFormat) ?? (labelFormat === "" ? undefined : invalidLabelKey(labelFormat.replace("%s", "resourcegroup"))),
  );
  return {
    kubeconfig: nonEmpty(r.string("kubeconfig")),
    labelFormat,
    namespaceIgnore: r.list("kubernetes.namespace.ignore").map((namespace) => namespace.toLowerCase()),
  };
}

function readAzureIdentity(r: FlagReader): Config["azureIdentity"] {
  const expiryEnable = r.bool("azureidentity.expiry");
  const expiryAnnotation = r.string("azureidentity.expiry.annotation") ?? "";
  // Checked only when used, as the Go operator did: an unused bad value must not stop a drop-in start.
  if (expiryEnable) r.check("azureidentity.expiry.annotation", expiryAnnotation, invalidLabelKey(expiryAnnotation));
  return {
    namespaced: r.bool("azureidentity.namespaced"),
    namespaceTemplate: r.template("azureidentity.template.namespace"),
    resourceNameTemplate: r.template("azureidentity.template.resourcename"),
    bindingSync: r.bool("azureidentity.binding.sync"),
    prune: r.bool("azureidentity.prune"),
    expiry: {
      enable: expiryEnable,
      annotation: expiryAnnotation,
      durationMs: r.duration("azureidentity.expiry.duration"),
      timeFormat: r.layout("azureidentity.expiry.timeformat"),
    },
  };
}

function readLease(r: FlagReader): Config["lease"] {
  const lease = {
    enable: r.bool("lease.enable"),
    name: objectName(r, "lease.name"),
    durationMs: r.duration("lease.duration"),
    renewDeadlineMs: r.duration("lease.renewdeadline"),
    retryPeriodMs: r.duration("lease.retryperiod"),
  };
  // client-go's leader election rules: renewal must fit in the lease, with room for jittered retries.
  if (lease.renewDeadlineMs >= lease.durationMs) {
    throw new ConfigError(
      `--lease.renewdeadline=${formatDuration(lease.renewDeadlineMs)} must be shorter than --lease.duration=${formatDuration(lease.durationMs)}`,
    );
  }
  if (lease.retryPeriodMs * 1.2 >= lease.renewDeadlineMs) {
    throw new ConfigError(
      `--lease.retryperiod=${formatDuration(lease.retryPeriodMs)} is too long for --lease.renewdeadline=${formatDuration(lease.renewDeadlineMs)} ` +
        "(the deadline must exceed 1.2 x the retry period)",
    );
  }
  return lease;
}

function readWebhook(r: FlagReader): Config["webhook"] {
  const tls = readWebhookTls(r);
  return {
    enable: r.bool("webhook.enable"),
    bind: r.address("webhook.bind"),
    allowUsers: r.list("webhook.allow.users"),
    allowGroups: r.list("webhook.allow.groups"),
    allowMic: r.list("webhook.allow.mic"),
    bindingStrict: r.bool("webhook.binding.strict"),
    enforcement: readEnforcement(r),
    inflightBytes: r.int("webhook.inflight.mib") * 1024 * 1024,
    maxConnections: r.int("webhook.max.connections"),
    serviceName: objectName(r, "webhook.service.name", invalidNamespaceName),
    validatingConfigName: objectName(r, "webhook.config.validating"),
    mutatingConfigName: objectName(r, "webhook.config.mutating"),
    tls,
  };
}

function readEnforcement(r: FlagReader): "deny" | "warn" {
  const value = (r.string("webhook.enforcement") ?? "deny").trim().toLowerCase();
  r.check("webhook.enforcement", value, value === "deny" || value === "warn" ? undefined : "must be deny or warn");
  return value === "warn" ? "warn" : "deny";
}

function readWebhookTls(r: FlagReader): Config["webhook"]["tls"] {
  const certFile = nonEmpty(r.string("webhook.tls.cert"));
  const keyFile = nonEmpty(r.string("webhook.tls.key"));
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(
      `--webhook.tls.cert and --webhook.tls.key must be given together (only ${certFile ? "--webhook.tls.cert" : "--webhook.tls.key"} is set)`,
    );
  }
  const certValidityMs = r.duration("webhook.cert.validity");
  const caValidityMs = r.duration("webhook.ca.validity");
  if (caValidityMs < certValidityMs)
    throw new ConfigError(`--webhook.ca.validity=${formatDuration(caValidityMs)} must be at least --webhook.cert.validity=${formatDuration(certValidityMs)}`);
  const rotate = r.rotation("webhook.cert.rotate");
  if (rotate.kind === "before" && rotate.beforeMs >= certValidityMs) {
    throw new ConfigError(`--webhook.cert.rotate=${rotate.text} must be shorter than --webhook.cert.validity=${formatDuration(certValidityMs)}`);
  }
  return {
    files: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
    sans: r.list("webhook.tls.san", checkSan),
    secretName: objectName(r, "webhook.tls.secret"),
    certValidityMs,
    rotate,
    caValidityMs,
  };
}

/** A Kubernetes object name flag (Services are DNS labels, everything else here DNS subdomains). */
function objectName(r: FlagReader, flag: string, rule: (value: string) => string | undefined = invalidObjectName): string {
  const value = r.string(flag) ?? "";
  r.check(flag, value, rule(value));
  return value;
}
