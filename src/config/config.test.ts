import { test } from "node:test";
import assert from "node:assert/strict";
import { scanArgv } from "./argv.js";
import { buildConfig, parseConfig, type Config, type ConfigContext } from "./config.js";
import { FLAGS } from "./flags.js";
import { FlagReader, type Env } from "./reader.js";

function parse(argv: string[] = [], env: Env = {}, context: ConfigContext = {}): Config {
  const result = parseConfig(argv, env, context);
  assert.ok(result.ok, result.ok ? "" : result.help ? "help" : result.error);
  return result.config;
}

/** The error line; asserts exit code 2 and a single line. */
function error(argv: string[], env: Env = {}): string {
  const result = parseConfig(argv, env);
  assert.ok(!result.ok && !result.help, `expected an error for ${JSON.stringify(argv)} ${JSON.stringify(env)}`);
  assert.equal(result.exitCode, 2);
  assert.ok(!result.error.includes("\n"), result.error);
  return result.error;
}

const H = 3_600_000;

test("defaults are the Go operator's (and the new flags' documented ones)", () => {
  const c = parse();
  assert.equal(c.command, "run");
  assert.equal(c.once, false);
  assert.deepEqual(c.log, { debug: false, json: false });
  assert.deepEqual(c.instance, { nodeName: undefined, namespace: "default", pod: undefined, podUid: undefined });
  assert.deepEqual(c.events, { burst: 50, perMinute: 60, refreshMs: 30 * 60_000 });
  assert.deepEqual(c.lease, { enable: false, name: "azure-msi-operator-leader", durationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
  assert.deepEqual(c.sync, { intervalMs: H, watch: false, lockTimeMs: 5 * 60_000, concurrency: 8, requestIntervalMs: 60_000 });
  assert.deepEqual(c.azure, { environment: "AZUREPUBLICCLOUD", subscriptions: [] });
  assert.deepEqual(c.kubernetes, {
    kubeconfig: undefined,
    labelFormat: "msi.azure.k8s.io/%s",
    namespaceIgnore: ["kube-system", "kube-public", "default", "gatekeeper-system", "istio-system"],
  });
  const ai = c.azureIdentity;
  assert.equal(ai.namespaced, false);
  assert.equal(ai.namespaceTemplate.source, '{{index .Tags "k8snamespace"}}');
  assert.equal(ai.resourceNameTemplate.source, "{{ .Name }}-{{ .ClientId }}");
  assert.equal(ai.bindingSync, false);
  assert.equal(ai.prune, false);
  assert.equal(ai.expiry.enable, false);
  assert.equal(ai.expiry.annotation, "janitor/expires");
  assert.equal(ai.expiry.durationMs, 2190 * H);
  assert.equal(ai.expiry.timeFormat.source, "2006-01-02");
  assert.deepEqual(c.server, { bind: { text: ":8080", host: undefined, port: 8080 }, readTimeoutMs: 5_000, writeTimeoutMs: 10_000 });
  assert.deepEqual(c.shutdown, { delayMs: 5_000 });
  assert.deepEqual(c.audit, { enable: true, micForceNamespaced: false, micManagers: ["aad-pod-identity"] });
  const { tls, ...webhook } = c.webhook;
  assert.deepEqual(webhook, {
    enable: true,
    enforcement: "deny",
    bind: { text: ":9443", host: undefined, port: 9443 },
    allowUsers: [],
    allowGroups: ["system:masters"],
    allowMic: [
      "system:serviceaccount:default:aad-pod-id-mic-service-account",
      "system:serviceaccount:default:aad-pod-identity-mic",
      "system:serviceaccount:kube-system:aad-pod-identity-mic",
    ],
    bindingStrict: false,
    inflightBytes: 4 * 1024 * 1024,
    maxConnections: 256,
    serviceName: "azure-msi-operator-webhook",
    validatingConfigName: "azure-msi-operator",
    mutatingConfigName: "azure-msi-operator",
  });
  assert.deepEqual(tls, {
    files: undefined,
    sans: [],
    secretName: "azure-msi-operator-webhook-tls",
    certValidityMs: 8760 * H,
    rotate: { kind: "fraction", fraction: 1 / 3, text: "1/3" },
    caValidityMs: 87_600 * H,
  });
});

test("every env var of the Go operator is read, with Go's meaning", () => {
  const c = parse([], {
    DEBUG: "1",
    LOG_JSON: "true",
    INSTANCE_NODENAME: "node-1",
    INSTANCE_NAMESPACE: "ops",
    INSTANCE_POD: "pod-1",
    LEASE_ENABLE: "true",
    LEASE_NAME: "my-lease",
    SYNC_INTERVAL: "1h30m",
    SYNC_WATCH: "t",
    SYNC_LOCKTIME: "90s",
    AZURE_ENVIRONMENT: "AZURECHINACLOUD",
    AZURE_SUBSCRIPTION_ID: "sub-1 sub-2",
    KUBECONFIG: "/k/config",
    KUBERNETES_LABEL_FORMAT: "example.com/msi-%s",
    KUBERNETES_NAMESPACE_IGNORE: "kube-system  Team-X\n",
    AZUREIDENTITY_NAMESPACED: "TRUE",
    AZUREIDENTITY_TEMPLATE_NAMESPACE: '{{index .Tags "ns"}}',
    AZUREIDENTITY_TEMPLATE_RESOURCENAME: "{{ .Name }}",
    AZUREIDENTITY_BINDING_SYNC: "1",
    AZUREIDENTITY_EXPIRY: "true",
    AZUREIDENTITY_EXPIRY_ANNOTATION: "example.com/expires",
    AZUREIDENTITY_EXPIRY_DURATION: "720h",
    AZUREIDENTITY_EXPIRY_TIMEFORMAT: "2006-01-02T15:04:05Z07:00",
    SERVER_BIND: "127.0.0.1:9090",
    SERVER_TIMEOUT_READ: "1s",
    SERVER_TIMEOUT_WRITE: "2s",
  });
  assert.equal(c.log.debug, true);
  assert.equal(c.log.json, true);
  assert.deepEqual(c.instance, { nodeName: "node-1", namespace: "ops", pod: "pod-1", podUid: undefined });
  assert.equal(c.lease.enable, true);
  assert.equal(c.lease.name, "my-lease");
  assert.deepEqual(c.sync, { intervalMs: 1.5 * H, watch: true, lockTimeMs: 90_000, concurrency: 8, requestIntervalMs: 60_000 });
  assert.deepEqual(c.azure, { environment: "AZURECHINACLOUD", subscriptions: ["sub-1", "sub-2"] });
  assert.deepEqual(c.kubernetes, { kubeconfig: "/k/config", labelFormat: "example.com/msi-%s", namespaceIgnore: ["kube-system", "team-x"] });
  assert.equal(c.azureIdentity.namespaced, true);
  assert.equal(c.azureIdentity.namespaceTemplate.render({ Tags: { ns: "a" } }), "a");
  assert.equal(c.azureIdentity.resourceNameTemplate.render({ Name: "n" }), "n");
  assert.equal(c.azureIdentity.bindingSync, true);
  assert.equal(c.azureIdentity.expiry.enable, true);
  assert.equal(c.azureIdentity.expiry.annotation, "example.com/expires");
  assert.equal(c.azureIdentity.expiry.durationMs, 720 * H);
  assert.equal(c.azureIdentity.expiry.timeFormat.format(new Date(Date.UTC(2025, 0, 2, 3, 4, 5))), "2025-01-02T03:04:05Z");
  assert.deepEqual(c.server, { bind: { text: "127.0.0.1:9090", host: "127.0.0.1", port: 9090 }, readTimeoutMs: 1_000, writeTimeoutMs: 2_000 });
});

test("every new flag is read from its flag and its env var", () => {
  const flags = parse([
    "--azureidentity.prune",
    "--sync.concurrency=3",
    "--lease.duration=20s",
    "--lease.renewdeadline=15s",
    "--lease.retryperiod=1s",
    "--shutdown.delay=0",
    "--webhook.enable=false",
    "--webhook.bind=[::1]:8443",
    "--webhook.allow.users=alice",
    "--webhook.allow.users=bob",
    "--webhook.allow.groups=ops",
    "--webhook.allow.mic=system:serviceaccount:aad:mic",
    "--webhook.binding.strict",
    "--webhook.enforcement=warn",
    "--audit.enable=false",
    "--audit.mic.forcenamespaced",
    "--audit.mic.managers=aad-pod-identity",
    "--audit.mic.managers=mic",
    "--webhook.inflight.mib=32",
    "--webhook.max.connections=64",
    "--webhook.tls.cert=/tls/tls.crt",
    "--webhook.tls.key=/tls/tls.key",
    "--webhook.tls.san=127.0.0.1",
    "--webhook.tls.san=op.example.com",
    "--webhook.tls.secret=s",
    "--webhook.service.name=svc",
    "--webhook.config.validating=v",
    "--webhook.config.mutating=m",
    "--webhook.cert.validity=720h",
    "--webhook.cert.rotate=240h",
    "--webhook.ca.validity=8760h",
  ]);
  const fromEnv = parse([], {
    AZUREIDENTITY_PRUNE: "true",
    SYNC_CONCURRENCY: "3",
    LEASE_DURATION: "20s",
    LEASE_RENEWDEADLINE: "15s",
    LEASE_RETRYPERIOD: "1s",
    SHUTDOWN_DELAY: "0",
    WEBHOOK_ENABLE: "false",
    WEBHOOK_BIND: "[::1]:8443",
    WEBHOOK_ALLOW_USERS: "alice bob",
    WEBHOOK_ALLOW_GROUPS: "ops",
    WEBHOOK_ALLOW_MIC: "system:serviceaccount:aad:mic",
    WEBHOOK_BINDING_STRICT: "1",
    WEBHOOK_ENFORCEMENT: "Warn",
    AUDIT_ENABLE: "false",
    AUDIT_MIC_FORCENAMESPACED: "true",
    AUDIT_MIC_MANAGERS: "aad-pod-identity mic",
    WEBHOOK_INFLIGHT_MIB: "32",
    WEBHOOK_MAX_CONNECTIONS: "64",
    WEBHOOK_TLS_CERT: "/tls/tls.crt",
    WEBHOOK_TLS_KEY: "/tls/tls.key",
    WEBHOOK_TLS_SAN: "127.0.0.1 op.example.com",
    WEBHOOK_TLS_SECRET: "s",
    WEBHOOK_SERVICE_NAME: "svc",
    WEBHOOK_CONFIG_VALIDATING: "v",
    WEBHOOK_CONFIG_MUTATING: "m",
    WEBHOOK_CERT_VALIDITY: "720h",
    WEBHOOK_CERT_ROTATE: "240h",
    WEBHOOK_CA_VALIDITY: "8760h",
  });
  for (const c of [flags, fromEnv]) {
    assert.equal(c.azureIdentity.prune, true);
    assert.equal(c.sync.concurrency, 3);
    assert.deepEqual(c.lease, { enable: false, name: "azure-msi-operator-leader", durationMs: 20_000, renewDeadlineMs: 15_000, retryPeriodMs: 1_000 });
    assert.equal(c.shutdown.delayMs, 0);
    assert.deepEqual(c.audit, { enable: false, micForceNamespaced: true, micManagers: ["aad-pod-identity", "mic"] });
    assert.deepEqual(c.webhook, {
      enable: false,
      enforcement: "warn",
      bind: { text: "[::1]:8443", host: "::1", port: 8443 },
      allowUsers: ["alice", "bob"],
      allowGroups: ["ops"],
      allowMic: ["system:serviceaccount:aad:mic"],
      bindingStrict: true,
      inflightBytes: 32 * 1024 * 1024,
      maxConnections: 64,
      serviceName: "svc",
      validatingConfigName: "v",
      mutatingConfigName: "m",
      tls: {
        files: { certFile: "/tls/tls.crt", keyFile: "/tls/tls.key" },
        sans: ["127.0.0.1", "op.example.com"],
        secretName: "s",
        certValidityMs: 720 * H,
        rotate: { kind: "before", beforeMs: 240 * H, text: "240h" },
        caValidityMs: 8760 * H,
      },
    });
  }
});

test("command line wins over env, env over default; the last of a repeated scalar wins", () => {
  assert.equal(parse(["--sync.interval=5m"], { SYNC_INTERVAL: "2h" }).sync.intervalMs, 5 * 60_000);
  assert.equal(parse([], { SYNC_INTERVAL: "2h" }).sync.intervalMs, 2 * H);
  assert.equal(parse(["--sync.interval", "1m", "--sync.interval", "2m"]).sync.intervalMs, 2 * 60_000);
  assert.equal(parse(["--webhook.enable=false"], { WEBHOOK_ENABLE: "true" }).webhook.enable, false);
  assert.equal(parse(["--webhook.enable"], { WEBHOOK_ENABLE: "false" }).webhook.enable, true);
  assert.equal(parse(["--log.debug=false"], { LOG_DEBUG: "true" }).log.debug, false);
  // A list given on the command line replaces the env list entirely, as with go-flags.
  assert.deepEqual(parse(["--azure.subscription=a"], { AZURE_SUBSCRIPTION_ID: "b c" }).azure.subscriptions, ["a"]);
  // An env var set to "" is set: for a string that means empty (no lookup labels), for a list: no items.
  assert.equal(parse([], { KUBERNETES_LABEL_FORMAT: "" }).kubernetes.labelFormat, "");
  assert.deepEqual(parse([], { KUBERNETES_NAMESPACE_IGNORE: "" }).kubernetes.namespaceIgnore, []);
  assert.deepEqual(parse(["--kubernetes.namespace.ignore="]).kubernetes.namespaceIgnore, []);
  assert.equal(parse(["--kubernetes.label.format="]).kubernetes.labelFormat, "");
  assert.equal(parse(["--kubernetes.label.format", ""]).kubernetes.labelFormat, "");
});

test("lists: repeated on the command line, space separated in env", () => {
  assert.deepEqual(parse(["--azure.subscription", "a", "--azure.subscription=b"]).azure.subscriptions, ["a", "b"]);
  assert.deepEqual(parse([], { AZURE_SUBSCRIPTION_ID: " a  b\tc\n" }).azure.subscriptions, ["a", "b", "c"]);
  assert.deepEqual(parse([], { WEBHOOK_ALLOW_GROUPS: "" }).webhook.allowGroups, []);
  assert.deepEqual(parse([], { KUBERNETES_NAMESPACE_IGNORE: "kube-system" }).kubernetes.namespaceIgnore, ["kube-system"]);
});

test("bool forms: bare flag, --flag=value, env true/false/1/0/t/f in any case", () => {
  for (const value of ["true", "TRUE", "True", "t", "T", "1", "yes", "on", " true\n"]) assert.equal(parse([], { SYNC_WATCH: value }).sync.watch, true, value);
  for (const value of ["false", "FALSE", "False", "f", "F", "0", "no", "off"]) assert.equal(parse([], { WEBHOOK_ENABLE: value }).webhook.enable, false, value);
  assert.equal(parse(["--sync.watch"]).sync.watch, true);
  assert.equal(parse(["--sync.watch=1"]).sync.watch, true);
  assert.equal(parse(["--sync.watch=false"]).sync.watch, false);
  // A bool flag takes no separate value: the next word is not consumed.
  assert.match(error(["--sync.watch", "false"]), /unknown command "false"/);
});

test("debug logging: --log.debug, --debug, --verbose, -v and their env vars all mean the same", () => {
  for (const argv of [["--log.debug"], ["--debug"], ["--verbose"], ["-v"]]) assert.equal(parse(argv).log.debug, true, argv[0]);
  for (const name of ["LOG_DEBUG", "DEBUG", "VERBOSE"]) assert.equal(parse([], { [name]: "true" }).log.debug, true, name);
  // The primary env var decides when several are set.
  assert.equal(parse([], { LOG_DEBUG: "false", DEBUG: "true" }).log.debug, false);
});

test("the Go original's --log.devel (LOG_DEVEL) is accepted and logs at debug level, as zap's development logger does", () => {
  assert.equal(parse(["--log.devel"]).log.debug, true);
  assert.equal(parse([], { LOG_DEVEL: "true" }).log.debug, true);
  assert.equal(parse([]).log.debug, false);
  assert.equal(parse([], { LOG_DEVEL: "false" }).log.debug, false);
});

test("--bind is the older spelling of --server.bind", () => {
  assert.equal(parse(["--bind=:9000"]).server.bind.port, 9000);
  assert.equal(parse(["--bind", "0.0.0.0:9000"]).server.bind.host, "0.0.0.0");
  assert.equal(parse(["--server.bind=localhost:1"]).server.bind.host, "localhost");
});

test("commands: run by default, sync, sync --once, and diff and migrate with --output", () => {
  assert.equal(parse([]).command, "run");
  assert.equal(parse(["run"]).command, "run");
  const once = parse(["sync", "--once"]);
  assert.equal(once.command, "sync");
  assert.equal(once.once, true);
  assert.equal(parse(["--log.json", "sync"]).command, "sync");
  assert.equal(parse(["sync"]).once, false);
  assert.match(error(["--once"]), /--once only works with the sync command/);
  assert.match(error(["run", "--once"]), /--once only works with the sync command/);
  assert.match(error(["deploy"]), /unknown command "deploy" \(commands: run, sync, diff, audit, migrate, version\)/);
  assert.equal(parse(["audit", "--output=json"]).output, "json");
  assert.match(error(["--webhook.enforcement=log"]), /invalid value "log" for --webhook.enforcement: must be deny or warn/);
  assert.equal(parse(["diff"]).command, "diff");
  assert.equal(parse(["diff"]).output, "text");
  assert.equal(parse(["diff", "--output=json"]).output, "json");
  assert.match(error(["diff", "--output=yaml"]), /invalid value "yaml" for --output: must be text or json/);
  assert.equal(parse(["migrate"]).command, "migrate");
  assert.equal(parse(["migrate", "--output=json"]).output, "json");
  assert.match(error(["sync", "--output=json"]), /--output only works with the diff, audit and migrate commands/);
  assert.match(error(["sync", "run"]), /unexpected argument "run"/);
  assert.match(error(["--", "x"]), /unexpected argument "x"/);
});

test("instance namespace: flag or env, else the service-account namespace, else default", () => {
  assert.equal(parse([], {}, { serviceAccountNamespace: "ops\n" }).instance.namespace, "ops");
  assert.equal(parse([], { INSTANCE_NAMESPACE: "team" }, { serviceAccountNamespace: "ops" }).instance.namespace, "team");
  assert.equal(parse([], { INSTANCE_NAMESPACE: "" }, { serviceAccountNamespace: "ops" }).instance.namespace, "ops");
  assert.equal(parse(["--instance.namespace=x"], {}, { serviceAccountNamespace: "ops" }).instance.namespace, "x");
  assert.equal(parse([], {}, { serviceAccountNamespace: "" }).instance.namespace, "default");
});

test("bad values fail with one line naming the flag, the env var when it came from there, and the value", () => {
  assert.equal(error([], { SYNC_INTERVAL: "1x" }), 'invalid value "1x" for --sync.interval (SYNC_INTERVAL): not a Go duration (examples: 90s, 1h30m)');
  assert.equal(error(["--sync.interval=1x"]), 'invalid value "1x" for --sync.interval: not a Go duration (examples: 90s, 1h30m)');
  assert.equal(error(["--sync.interval", "90"]), 'invalid value "90" for --sync.interval: not a Go duration (examples: 90s, 1h30m)');
  const cases: Array<[string[], Env, RegExp]> = [
    [[], { DEBUG: "maybe" }, /^invalid value "maybe" for --log\.debug \(DEBUG\): not a boolean/],
    [[], { LEASE_ENABLE: "" }, /^invalid value "" for --lease\.enable \(LEASE_ENABLE\): not a boolean/],
    [["--webhook.enable=nope"], {}, /^invalid value "nope" for --webhook\.enable: not a boolean/],
    [["--sync.interval=0s"], {}, /^invalid value "0s" for --sync\.interval: must be greater than 0/],
    [["--sync.interval=-1h"], {}, /^invalid value "-1h" for --sync\.interval: must be greater than 0/],
    [[], { SYNC_LOCKTIME: "-5m" }, /^invalid value "-5m" for --sync\.locktime \(SYNC_LOCKTIME\): must not be negative/],
    [[], { SYNC_CONCURRENCY: "many" }, /^invalid value "many" for --sync\.concurrency \(SYNC_CONCURRENCY\): not an integer/],
    [["--sync.concurrency=0"], {}, /^invalid value "0" for --sync\.concurrency: must be at least 1/],
    // Below one maximal AdmissionReview (3.5 MiB) the API server's large reviews could never get in.
    [["--webhook.inflight.mib=3"], {}, /^invalid value "3" for --webhook\.inflight\.mib: must be at least 4/],
    [["--sync.concurrency=1000"], {}, /^invalid value "1000" for --sync\.concurrency: must be at most 256/],
    [["--sync.concurrency=2.5"], {}, /not an integer/],
    [["--bind=8080"], {}, /^invalid value "8080" for --bind: not a listen address/],
    [[], { SERVER_BIND: ":99999" }, /^invalid value ":99999" for --server\.bind \(SERVER_BIND\): port must be at most 65535/],
    [["--webhook.bind=[nope]:1"], {}, /^invalid value "\[nope\]:1" for --webhook\.bind: not a listen address/],
    [
      [],
      { AZUREIDENTITY_EXPIRY_TIMEFORMAT: "YYYY-MM-DD" },
      /^invalid value "YYYY-MM-DD" for --azureidentity\.expiry\.timeformat \(AZUREIDENTITY_EXPIRY_TIMEFORMAT\): not a Go time layout/,
    ],
    [
      [],
      { AZUREIDENTITY_TEMPLATE_NAMESPACE: "{{ .Tags.x | lower }}" },
      /^invalid value "\{\{ \.Tags\.x \| lower \}\}" for --azureidentity\.template\.namespace \(AZUREIDENTITY_TEMPLATE_NAMESPACE\): unsupported Go template action/,
    ],
    [
      ["--azureidentity.template.resourcename={{ Name | nofilter }}"],
      {},
      /^invalid value .* for --azureidentity\.template\.resourcename: not a valid Liquid template: undefined filter: nofilter/,
    ],
    [["--kubernetes.label.format=msi/%s/%s"], {}, /^invalid value "msi\/%s\/%s" for --kubernetes\.label\.format: must contain exactly one %s/],
    [[], { KUBERNETES_LABEL_FORMAT: "msi.azure.k8s.io/%d" }, /\(KUBERNETES_LABEL_FORMAT\): must contain exactly one %s/],
    [[], { KUBERNETES_LABEL_FORMAT: "Bad Prefix/%s" }, /\(KUBERNETES_LABEL_FORMAT\): prefix "Bad Prefix" must be a DNS subdomain/],
    [["--azureidentity.expiry", "--azureidentity.expiry.annotation=not valid"], {}, /^invalid value "not valid" for --azureidentity\.expiry\.annotation: /],
    [["--webhook.tls.san=127.0.0.1", "--webhook.tls.san=bad_name!"], {}, /^invalid value "bad_name!" for --webhook\.tls\.san: not a DNS name or IP address/],
    [[], { WEBHOOK_TLS_SAN: "ok.example.com -bad" }, /^invalid value "-bad" for --webhook\.tls\.san \(WEBHOOK_TLS_SAN\)/],
    [["--webhook.cert.rotate=2"], {}, /^invalid value "2" for --webhook\.cert\.rotate: not a fraction of the validity between 0 and 1/],
    [["--webhook.cert.rotate=3/2"], {}, /not a fraction/],
    [["--webhook.cert.rotate=0"], {}, /not a fraction/],
    [["--webhook.cert.rotate=9000h"], {}, /^--webhook\.cert\.rotate=9000h must be shorter than --webhook\.cert\.validity=8760h0m0s/],
    [["--webhook.ca.validity=1h"], {}, /^--webhook\.ca\.validity=1h0m0s must be at least --webhook\.cert\.validity=8760h0m0s/],
    [["--webhook.cert.validity=0s"], {}, /^invalid value "0s" for --webhook\.cert\.validity: must be greater than 0/],
    [["--webhook.tls.cert=/c"], {}, /^--webhook\.tls\.cert and --webhook\.tls\.key must be given together \(only --webhook\.tls\.cert is set\)/],
    [[], { WEBHOOK_TLS_KEY: "/k" }, /only --webhook\.tls\.key is set/],
    [["--lease.renewdeadline=15s"], {}, /^--lease\.renewdeadline=15s must be shorter than --lease\.duration=15s/],
    [["--lease.retryperiod=9s"], {}, /^--lease\.retryperiod=9s is too long for --lease\.renewdeadline=10s/],
    [["--lease.name=Not_A_Name"], {}, /^invalid value "Not_A_Name" for --lease\.name: must consist of lower case/],
    [[], { WEBHOOK_SERVICE_NAME: "a.b" }, /\(WEBHOOK_SERVICE_NAME\): must consist of lower case alphanumeric characters or '-'/],
    [["--sync.intervall=1h"], {}, /^unknown flag --sync\.intervall \(did you mean --sync\.interval\?\); see --help$/],
    [["--interval=1h"], {}, /did you mean --sync\.interval\?/],
    [["--completely-unknown"], {}, /^unknown flag --completely-unknown; see --help$/],
    [["-x"], {}, /^unknown flag -x; see --help$/],
    [["--sync.interval"], {}, /^flag --sync\.interval needs a value/],
    [["--sync.interval", "--sync.watch"], {}, /^flag --sync\.interval needs a value/],
  ];
  for (const [argv, env, expected] of cases) assert.match(error(argv, env), expected, JSON.stringify([argv, env]));
});

test("a negative duration can follow its flag as a separate word", () => {
  assert.match(error(["--sync.locktime", "-5m"]), /must not be negative/);
});

test("values a drop-in start must tolerate: an unused expiry annotation is not checked", () => {
  assert.equal(parse([], { AZUREIDENTITY_EXPIRY_ANNOTATION: "not valid" }).azureIdentity.expiry.annotation, "not valid");
});

test("--version wherever it appears, or version as the command, returns the version line with exit code 0; --help wins over it", () => {
  for (const argv of [["--version"], ["version"], ["sync", "--once", "--version"], ["--nope", "--version"], ["version", "--sync.interval=bad"]]) {
    const result = parseConfig(argv, {});
    assert.ok(!result.ok && result.help, JSON.stringify(argv));
    assert.equal(result.exitCode, 0);
    assert.match(result.text, /^azure-msi-operator \d+\.\d+\.\d+\S* \(revision \S+, node v\d+\.\d+\.\d+\)\n$/, JSON.stringify(argv));
  }
  const both = parseConfig(["--version", "--help"], {});
  assert.ok(!both.ok && both.help && both.text.startsWith("Usage:"));
  assert.match(error(["version", "diff"]), /^unexpected argument "diff"$/);
  assert.match(error(["versions"]), /^unknown command "versions" \(commands: run, sync, diff, audit, migrate, version\)$/);
});

test("--help and -h return the usage with exit code 0, wherever they appear", () => {
  for (const argv of [["--help"], ["-h"], ["sync", "--sync.interval=bad", "-h"], ["--nope", "--help"]]) {
    const result = parseConfig(argv, {});
    assert.ok(!result.ok && result.help, JSON.stringify(argv));
    assert.equal(result.exitCode, 0);
    assert.match(result.text, /^Usage:/);
  }
});

test("every flag of the table is read into the config (none is parsed and then ignored)", () => {
  const scanned = scanArgv(["sync"]);
  assert.ok(scanned.ok);
  const reader = new FlagReader(scanned.values, {});
  buildConfig(reader, scanned.command, {});
  assert.deepEqual(
    FLAGS.map((flag) => flag.name).filter((name) => !reader.used.has(name)),
    [],
  );
});

test("the flag table has unique names, env vars and short forms", () => {
  const names = FLAGS.flatMap((flag) => [flag.name, ...(flag.aliases ?? [])]);
  const env = FLAGS.flatMap((flag) => flag.env ?? []);
  const shorts = FLAGS.flatMap((flag) => (flag.short ? [flag.short] : []));
  for (const list of [names, env, shorts]) assert.equal(new Set(list).size, list.length);
  assert.ok(!names.includes("help") && !shorts.includes("h"));
});

test("workload identity flags: off by default, read from flags and env, a bad issuer or cluster name is one clear line", () => {
  assert.deepEqual(parse().workloadIdentity, { enable: false, issuer: undefined, cluster: undefined, previousClusters: [], strict: false, ficNamespaceCap: 0 });
  assert.deepEqual(
    parse(["--workloadidentity.enable", "--workloadidentity.issuer=https://oidc.example/abc/", "--workloadidentity.fic.namespacecap=5"], {
      WORKLOADIDENTITY_CLUSTER: "prod-weu",
      WORKLOADIDENTITY_CLUSTER_PREVIOUS: "prod-eu 735a6866f8",
      WORKLOADIDENTITY_STRICT: "true",
    }).workloadIdentity,
    { enable: true, issuer: "https://oidc.example/abc/", cluster: "prod-weu", previousClusters: ["prod-eu", "735a6866f8"], strict: true, ficNamespaceCap: 5 },
  );
  assert.match(error(["--workloadidentity.fic.namespacecap=21"]), /--workloadidentity\.fic\.namespacecap/);
  assert.equal(
    error(["--workloadidentity.cluster.previous=a_b"]),
    'invalid value "a_b" for --workloadidentity.cluster.previous: must be 1 to 24 letters, digits and dashes',
  );
  assert.equal(
    error(["--workloadidentity.issuer=http://oidc.example/"]),
    'invalid value "http://oidc.example/" for --workloadidentity.issuer: must be an https URL (Azure requires it)',
  );
  assert.equal(
    error([], { WORKLOADIDENTITY_CLUSTER: "Prod_1" }),
    'invalid value "Prod_1" for --workloadidentity.cluster (WORKLOADIDENTITY_CLUSTER): must be 1 to 24 lower-case letters, digits and dashes',
  );
});
