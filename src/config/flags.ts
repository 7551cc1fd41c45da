// The one table every flag is declared in. Parsing, --help and the reference table (docs/reference.md) are all generated
// from it, so documentation cannot drift from behaviour. Names, env vars and defaults of the Go
// operator's flags are kept exactly (drop-in replacement); new flags follow the same group.name style.

/**
 * How a value is parsed:
 * bool (true/false, 1/0, ...), string, duration (Go syntax, e.g. 1h30m), list (repeat the flag; space
 * separated in env), int, layout (Go time layout), template (Liquid or simple Go template),
 * address ([host]:port), rotation (fraction of the validity, or a Go duration).
 */
export type FlagKind = "bool" | "string" | "duration" | "list" | "int" | "layout" | "template" | "address" | "rotation";

export interface FlagSpec {
  /** Long name without dashes. */
  readonly name: string;
  /** Other long names that mean the same (older spellings). */
  readonly aliases?: readonly string[];
  readonly short?: string;
  /** Env vars, first one primary; when several are set, the first set one is used. */
  readonly env?: readonly string[];
  readonly kind: FlagKind;
  /** In the syntax the flag takes (a list as its items); absent: unset. */
  readonly default?: string | readonly string[];
  /** Shown instead of the default when the default is computed at start-up. */
  readonly defaultNote?: string;
  readonly help: string;
  readonly group: string;
  /** Bounds checked after parsing: durations in milliseconds, ints as they are. */
  readonly min?: number;
  readonly minExclusive?: boolean;
  readonly max?: number;
}

export const FLAGS: readonly FlagSpec[] = [
  // logging: the Go operator has had --debug and -v/--verbose, later --log.debug; all mean debug
  {
    group: "Logging",
    name: "log.debug",
    aliases: ["debug", "verbose"],
    short: "v",
    env: ["LOG_DEBUG", "DEBUG", "VERBOSE"],
    kind: "bool",
    default: "false",
    help: "debug logging",
  },
  {
    group: "Logging",
    name: "log.devel",
    env: ["LOG_DEVEL"],
    kind: "bool",
    default: "false",
    help: "development mode, as the Go original's (zap's development logger): debug logging",
  },
  { group: "Logging", name: "log.json", env: ["LOG_JSON"], kind: "bool", default: "false", help: "log in JSON" },

  { group: "Instance", name: "instance.nodename", env: ["INSTANCE_NODENAME"], kind: "string", help: "name of the node this pod runs on (downward API)" },
  {
    group: "Instance",
    name: "instance.namespace",
    env: ["INSTANCE_NAMESPACE"],
    kind: "string",
    defaultNote: 'the pod\'s service-account namespace, else "default"',
    help: "namespace this pod runs in (holds the Lease and the webhook Secret)",
  },
  { group: "Instance", name: "instance.pod", env: ["INSTANCE_POD"], kind: "string", help: "name of this pod (downward API; the Lease holder identity)" },
  {
    group: "Instance",
    name: "instance.poduid",
    env: ["INSTANCE_POD_UID"],
    kind: "string",
    help: "uid of this pod (downward API): with instance.pod, the operator's Events on its pod show in `kubectl describe pod`",
  },

  {
    group: "Leader election",
    name: "lease.enable",
    env: ["LEASE_ENABLE"],
    kind: "bool",
    default: "false",
    help: "leader election: only the Lease holder syncs (off: this instance syncs)",
  },
  { group: "Leader election", name: "lease.name", env: ["LEASE_NAME"], kind: "string", default: "azure-msi-operator-leader", help: "name of the Lease" },
  {
    group: "Leader election",
    name: "lease.duration",
    env: ["LEASE_DURATION"],
    kind: "duration",
    default: "15s",
    min: 0,
    minExclusive: true,
    help: "how long a Lease is valid without renewal",
  },
  {
    group: "Leader election",
    name: "lease.renewdeadline",
    env: ["LEASE_RENEWDEADLINE"],
    kind: "duration",
    default: "10s",
    min: 0,
    minExclusive: true,
    help: "the leader stops writing when it cannot renew within this",
  },
  {
    group: "Leader election",
    name: "lease.retryperiod",
    env: ["LEASE_RETRYPERIOD"],
    kind: "duration",
    default: "2s",
    min: 0,
    minExclusive: true,
    help: "how often to try to acquire or renew the Lease",
  },

  { group: "Sync", name: "sync.interval", env: ["SYNC_INTERVAL"], kind: "duration", default: "1h", min: 0, minExclusive: true, help: "full sync interval" },
  {
    group: "Sync",
    name: "sync.watch",
    env: ["SYNC_WATCH"],
    kind: "bool",
    default: "false",
    help: "also sync on changes: new namespaces, changed bindings, edited or deleted identities",
  },
  { group: "Sync", name: "sync.locktime", env: ["SYNC_LOCKTIME"], kind: "duration", default: "5m", min: 0, help: "minimum time between two Azure listings" },
  {
    group: "Sync",
    name: "sync.request.interval",
    env: ["SYNC_REQUEST_INTERVAL"],
    kind: "duration",
    default: "1m",
    min: 0,
    help: "minimum time between two requested syncs (Lease annotation msi.azure.k8s.io/sync-now); a request sooner waits for it",
  },
  {
    group: "Sync",
    name: "sync.concurrency",
    env: ["SYNC_CONCURRENCY"],
    kind: "int",
    default: "8",
    min: 1,
    max: 256,
    help: "maximum concurrent Kubernetes writes during a sync",
  },
  { group: "Sync", name: "once", kind: "bool", default: "false", help: "with the sync command: one full sync, then exit (0 on success)" },
  { group: "Sync", name: "output", kind: "string", default: "text", help: "with the diff, audit and migrate commands: text or json" },

  {
    group: "Events",
    name: "events.burst",
    env: ["EVENTS_BURST"],
    kind: "int",
    default: "50",
    min: 1,
    max: 10000,
    help: "Kubernetes Event writes (creates and count patches) allowed at once, for the whole process",
  },
  {
    group: "Events",
    name: "events.rate",
    env: ["EVENTS_RATE"],
    kind: "int",
    default: "60",
    min: 1,
    max: 60000,
    help: 'Kubernetes Event writes per minute after the burst; new Events over it are dropped (azuremsi_events_total{outcome="dropped"})',
  },
  {
    group: "Events",
    name: "events.refresh",
    env: ["EVENTS_REFRESH"],
    kind: "duration",
    default: "30m",
    min: 0,
    help: "a repeated Event's count (its series) is written at most this often",
  },

  {
    group: "Azure",
    name: "azure.environment",
    env: ["AZURE_ENVIRONMENT"],
    kind: "string",
    default: "AZUREPUBLICCLOUD",
    help: "Azure cloud (AZUREPUBLICCLOUD, AZURECHINACLOUD, AZUREUSGOVERNMENTCLOUD; other clouds via AZURE_ENVIRONMENT_FILEPATH)",
  },
  {
    group: "Azure",
    name: "azure.subscription",
    env: ["AZURE_SUBSCRIPTION_ID"],
    kind: "list",
    default: [],
    defaultNote: "all the credential can list",
    help: "Azure subscription IDs",
  },

  { group: "Kubernetes", name: "kubeconfig", env: ["KUBECONFIG"], kind: "string", help: "kubeconfig path (empty in-cluster)" },
  {
    group: "Kubernetes",
    name: "kubernetes.label.format",
    env: ["KUBERNETES_LABEL_FORMAT"],
    kind: "string",
    default: "msi.azure.k8s.io/%s",
    help: "lookup label key format, one %s (empty: no lookup labels)",
  },
  {
    group: "Kubernetes",
    name: "kubernetes.namespace.ignore",
    env: ["KUBERNETES_NAMESPACE_IGNORE"],
    kind: "list",
    default: ["kube-system", "kube-public", "default", "gatekeeper-system", "istio-system"],
    help: "namespaces never given identities",
  },

  {
    group: "AzureIdentity",
    name: "azureidentity.namespaced",
    env: ["AZUREIDENTITY_NAMESPACED"],
    kind: "bool",
    default: "false",
    help: "set the aadpodidentity.k8s.io/Behavior=namespaced annotation",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.template.namespace",
    env: ["AZUREIDENTITY_TEMPLATE_NAMESPACE"],
    kind: "template",
    default: '{{index .Tags "k8snamespace"}}',
    help: "template for the namespaces (comma-separated) of an MSI's identities",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.template.resourcename",
    env: ["AZUREIDENTITY_TEMPLATE_RESOURCENAME"],
    kind: "template",
    default: "{{ .Name }}-{{ .ClientId }}",
    help: "template for the AzureIdentity name",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.binding.sync",
    env: ["AZUREIDENTITY_BINDING_SYNC"],
    kind: "bool",
    default: "false",
    help: "keep spec.azureIdentity of bindings with the lookup labels right",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.prune",
    env: ["AZUREIDENTITY_PRUNE"],
    kind: "bool",
    default: "false",
    help: "delete operator-owned identities no longer in Azure (only after a complete listing)",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.expiry",
    env: ["AZUREIDENTITY_EXPIRY"],
    kind: "bool",
    default: "false",
    help: "set an expiry annotation (for kube-janitor)",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.expiry.annotation",
    env: ["AZUREIDENTITY_EXPIRY_ANNOTATION"],
    kind: "string",
    default: "janitor/expires",
    help: "expiry annotation key",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.expiry.duration",
    env: ["AZUREIDENTITY_EXPIRY_DURATION"],
    kind: "duration",
    default: "2190h",
    min: 0,
    help: "expiry, counted from each sync",
  },
  {
    group: "AzureIdentity",
    name: "azureidentity.expiry.timeformat",
    env: ["AZUREIDENTITY_EXPIRY_TIMEFORMAT"],
    kind: "layout",
    default: "2006-01-02",
    help: "Go time layout of the expiry value (UTC)",
  },

  {
    group: "Server",
    name: "server.bind",
    aliases: ["bind"],
    env: ["SERVER_BIND"],
    kind: "address",
    default: ":8080",
    help: "metrics and health address (plain HTTP)",
  },
  { group: "Server", name: "server.timeout.read", env: ["SERVER_TIMEOUT_READ"], kind: "duration", default: "5s", min: 0, help: "server read timeout" },
  { group: "Server", name: "server.timeout.write", env: ["SERVER_TIMEOUT_WRITE"], kind: "duration", default: "10s", min: 0, help: "server write timeout" },
  {
    group: "Server",
    name: "shutdown.delay",
    env: ["SHUTDOWN_DELAY"],
    kind: "duration",
    default: "5s",
    min: 0,
    help: "keep serving admission this long after SIGTERM",
  },

  { group: "Webhook", name: "webhook.enable", env: ["WEBHOOK_ENABLE"], kind: "bool", default: "true", help: "serve the admission webhooks" },
  { group: "Webhook", name: "webhook.bind", env: ["WEBHOOK_BIND"], kind: "address", default: ":9443", help: "webhook address (HTTPS)" },
  {
    group: "Webhook",
    name: "webhook.allow.users",
    env: ["WEBHOOK_ALLOW_USERS"],
    kind: "list",
    default: [],
    help: "admin users that may write AzureIdentities, AzureAssignedIdentities and AzurePodIdentityExceptions",
  },
  {
    group: "Webhook",
    name: "webhook.allow.groups",
    env: ["WEBHOOK_ALLOW_GROUPS"],
    kind: "list",
    default: ["system:masters"],
    help:
      "admin groups that may write AzureIdentities, AzureAssignedIdentities and AzurePodIdentityExceptions " +
      "(on AKS with Entra ID: the cluster-admin group's object ID)",
  },
  {
    group: "Webhook",
    name: "webhook.allow.mic",
    env: ["WEBHOOK_ALLOW_MIC"],
    kind: "list",
    // aad-pod-identity's deploy/infra manifests, and its chart installed into default or kube-system.
    // Only namespaces developers do not own: whoever can run a pod as one of these may assign identities.
    default: [
      "system:serviceaccount:default:aad-pod-id-mic-service-account",
      "system:serviceaccount:default:aad-pod-identity-mic",
      "system:serviceaccount:kube-system:aad-pod-identity-mic",
    ],
    help: "aad-pod-identity MIC's service accounts, which may write AzureAssignedIdentities",
  },
  {
    group: "Webhook",
    name: "webhook.binding.strict",
    env: ["WEBHOOK_BINDING_STRICT"],
    kind: "bool",
    default: "false",
    help: "deny bindings whose lookup labels match no identity",
  },
  {
    group: "Webhook",
    name: "webhook.enforcement",
    env: ["WEBHOOK_ENFORCEMENT"],
    kind: "string",
    default: "deny",
    help:
      "deny: refuse what the guards refuse; warn: allow it with an admission warning, a log line and " +
      "azuremsi_admission_warned_total (to watch a first rollout before it denies)",
  },
  {
    group: "Webhook",
    name: "webhook.inflight.mib",
    env: ["WEBHOOK_INFLIGHT_MIB"],
    kind: "int",
    default: "4",
    min: 4,
    max: 1024,
    help:
      "admission bodies held at once, in MiB of their declared size; past it a request is answered 429 with Retry-After " +
      "before its body is read (a sixteenth is kept for bodies up to 64 KiB, the API server's usual reviews). " +
      "Parsed, a body can take 11 times its size: keep 11 times this well within the memory limit",
  },
  {
    group: "Webhook",
    name: "webhook.max.connections",
    env: ["WEBHOOK_MAX_CONNECTIONS"],
    kind: "int",
    default: "256",
    min: 1,
    max: 65535,
    help: "open webhook connections at once; past it a new connection is dropped and the idle ones are closed",
  },
  {
    group: "Webhook",
    name: "webhook.service.name",
    env: ["WEBHOOK_SERVICE_NAME"],
    kind: "string",
    default: "azure-msi-operator-webhook",
    help: "Service in front of the webhook (certificate SANs)",
  },
  {
    group: "Webhook",
    name: "webhook.config.validating",
    env: ["WEBHOOK_CONFIG_VALIDATING"],
    kind: "string",
    default: "azure-msi-operator",
    help: "ValidatingWebhookConfiguration whose caBundle is kept right",
  },
  {
    group: "Webhook",
    name: "webhook.config.mutating",
    env: ["WEBHOOK_CONFIG_MUTATING"],
    kind: "string",
    default: "azure-msi-operator",
    help: "MutatingWebhookConfiguration whose caBundle is kept right",
  },

  {
    group: "Webhook certificates",
    name: "webhook.tls.cert",
    env: ["WEBHOOK_TLS_CERT"],
    kind: "string",
    help: "serving certificate file (with --webhook.tls.key: bring your own, no self-management)",
  },
  { group: "Webhook certificates", name: "webhook.tls.key", env: ["WEBHOOK_TLS_KEY"], kind: "string", help: "serving key file (with --webhook.tls.cert)" },
  {
    group: "Webhook certificates",
    name: "webhook.tls.san",
    env: ["WEBHOOK_TLS_SAN"],
    kind: "list",
    default: [],
    help: "extra DNS names or IP addresses for the serving certificate",
  },
  {
    group: "Webhook certificates",
    name: "webhook.tls.secret",
    env: ["WEBHOOK_TLS_SECRET"],
    kind: "string",
    default: "azure-msi-operator-webhook-tls",
    help: "Secret holding the self-managed CA and serving certificate",
  },
  {
    group: "Webhook certificates",
    name: "webhook.cert.validity",
    env: ["WEBHOOK_CERT_VALIDITY"],
    kind: "duration",
    default: "8760h",
    min: 0,
    minExclusive: true,
    help: "serving certificate validity",
  },
  {
    group: "Webhook certificates",
    name: "webhook.cert.rotate",
    env: ["WEBHOOK_CERT_ROTATE"],
    kind: "rotation",
    default: "1/3",
    help: "rotate when less than this remains: a fraction of the validity (1/3, 0.25) or a Go duration (720h)",
  },
  {
    group: "Webhook certificates",
    name: "webhook.ca.validity",
    env: ["WEBHOOK_CA_VALIDITY"],
    kind: "duration",
    default: "87600h",
    min: 0,
    minExclusive: true,
    help: "CA validity (at least the serving certificate's)",
  },

  {
    group: "Audit",
    name: "audit.enable",
    env: ["AUDIT_ENABLE"],
    kind: "bool",
    default: "true",
    help: "after every full sync the leader checks what exists against the tags (azuremsi_audit_violations, Warning Events, PolicyReports where the CRD exists)",
  },
  {
    group: "Audit",
    name: "audit.mic.forcenamespaced",
    env: ["AUDIT_MIC_FORCENAMESPACED"],
    kind: "bool",
    default: "false",
    help: "MIC runs forced namespaced (its forceNamespaced flag): identities without the namespaced annotation are then no violation",
  },
  {
    group: "Audit",
    name: "audit.mic.managers",
    env: ["AUDIT_MIC_MANAGERS"],
    kind: "list",
    // MIC's User-Agent is aad-pod-identity/MIC/<version>/...; the API server names a field manager after its first part.
    default: ["aad-pod-identity"],
    help: "field managers (metadata.managedFields) MIC writes AzureAssignedIdentities as; any other writer is a violation",
  },

  {
    group: "Workload identity",
    name: "workloadidentity.enable",
    env: ["WORKLOADIDENTITY_ENABLE"],
    kind: "bool",
    default: "false",
    help: "Azure Workload Identity: fill azure.workload.identity/client-id on labelled ServiceAccounts and keep a federated identity credential on their MSI",
  },
  {
    group: "Workload identity",
    name: "workloadidentity.issuer",
    env: ["WORKLOADIDENTITY_ISSUER"],
    kind: "string",
    defaultNote: "discovered from the API server's /.well-known/openid-configuration",
    help: "this cluster's service-account token issuer (the OIDC issuer URL of AKS)",
  },
  {
    group: "Workload identity",
    name: "workloadidentity.cluster",
    env: ["WORKLOADIDENTITY_CLUSTER"],
    kind: "string",
    defaultNote: "derived from the issuer",
    help: "this cluster's name in federated identity credential names (clusters sharing MSIs each own only theirs)",
  },
  {
    group: "Workload identity",
    name: "workloadidentity.cluster.previous",
    env: ["WORKLOADIDENTITY_CLUSTER_PREVIOUS"],
    kind: "list",
    default: [],
    help: "names this cluster had before (--workloadidentity.cluster renamed): its FICs under them are adopted or revoked as its own (the default name, from the issuer, always counts)",
  },
  {
    group: "Workload identity",
    name: "workloadidentity.strict",
    env: ["WORKLOADIDENTITY_STRICT"],
    kind: "bool",
    default: "false",
    help: "deny labelled ServiceAccounts whose lookup labels match no identity of their namespace, and client-id annotations naming a client ID the operator does not know (without it: allowed with a warning)",
  },
  {
    group: "Workload identity",
    name: "workloadidentity.fic.namespacecap",
    env: ["WORKLOADIDENTITY_FIC_NAMESPACECAP"],
    kind: "int",
    default: "0",
    min: 0,
    max: 20,
    help: "at most this many federated identity credentials per namespace on one MSI (0: no cap; namespaces always get fair shares of Azure's 20)",
  },
];

export type Command = "run" | "sync" | "diff" | "audit" | "migrate";

export const COMMANDS: ReadonlyArray<{ name: Command; help: string }> = [
  { name: "run", help: "sync Azure MSIs and serve the admission webhooks (default)" },
  { name: "sync", help: "only sync, no webhooks; with --once one full sync, then exit" },
  { name: "diff", help: "print what a sync would create, change and delete, writing nothing (exit 0: no changes, 1: changes, 2: error)" },
  {
    name: "audit",
    help: "check what exists in the cluster and in Azure against the tags, writing nothing (exit 0: clean, 1: violations, 2: error)",
  },
  {
    name: "migrate",
    help: "print the pods still on aad-pod-identity and the changes that move them to workload identity, writing nothing (exit 0: none left, 1: some, 2: error)",
  },
];

export function findFlag(name: string): FlagSpec | undefined {
  return FLAGS.find((flag) => flag.name === name || flag.aliases?.includes(name));
}
