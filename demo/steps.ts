// The walk-through: each step says in one line what it shows, runs the real kubectl (or reads the
// operator's log and /metrics), prints what came back, and throws when the evidence is not there.
import { join } from "node:path";
import { CustomObjectsApi } from "@kubernetes/client-node";
import { OPERATOR_USER, type AuditEvent, type KubectlResult, type Who } from "../test/controlplane/controlplane.js";
import type { DemoEnvironment, Print } from "./environment.js";
import { commandLine, indent, logLine, metricsExcerpt, stepHeader } from "./print.js";
import { GROUP, identityName, LABEL_PREFIX, LEGACY, NEW_NAMESPACE, REPORTS, SHOP } from "./scenario.js";
import { waitFor, type StopRequest } from "./stop.js";

export interface StepContext {
  env: DemoEnvironment;
  print: Print;
  stop: StopRequest;
}

interface Step {
  title: string;
  why: string;
  run: (ctx: StepContext) => Promise<void>;
}

const METRICS = ["azuremsi_sync_objects", "azuremsi_msi_skipped_total", "azuremsi_admission_requests_total", "azuremsi_leader"];

async function kubectl(ctx: StepContext, who: Who, args: string[]): Promise<KubectlResult> {
  ctx.stop.throwIfRequested();
  const plane = ctx.env.plane;
  if (!plane) throw new Error("control plane is not running");
  ctx.print(commandLine(who, args));
  const result = await plane.kubectl(who, args);
  if (result.stdout.trim() !== "" || result.stderr.trim() === "") ctx.print(indent(result.stdout));
  if (result.stderr.trim() !== "") ctx.print(indent(result.stderr));
  if (result.code !== 0) ctx.print(`      (exit code ${result.code})`);
  return result;
}

function expect(condition: boolean, what: string): void {
  if (!condition) throw new Error(what);
}

const identitiesAppear: Step = {
  title: "Identities appear",
  why: `The operator listed the MSIs in Azure and wrote an AzureIdentity into each existing namespace their k8snamespace tag names (${SHOP.name}: ${SHOP.namespaces}).`,
  async run(ctx) {
    const result = await kubectl(ctx, "admin", ["get", "azureidentities", "-A", "-L", `${LABEL_PREFIX}/name,${LABEL_PREFIX}/resourcegroup`]);
    expect(result.code === 0, "kubectl get azureidentities failed");
    for (const namespace of SHOP.namespaces.split(",")) {
      expect(new RegExp(`^${namespace}\\s+${identityName(SHOP)}\\s`, "m").test(result.stdout), `no AzureIdentity ${identityName(SHOP)} in ${namespace}`);
    }
  },
};

const templateBreakingName: Step = {
  title: "An MSI whose name breaks the name template is skipped, with a reason",
  why: `"${LEGACY.name}" is a fine Azure name, but "{{ .Name }}-{{ .ClientId }}" renders no valid Kubernetes name from it: the operator skipped that MSI, logged why and counted it; the rest of the sync went on.`,
  async run(ctx) {
    const operator = ctx.env.operator;
    const line = operator?.logs.find((entry) => entry.msg === "MSI skipped" && String(entry.msi).includes(LEGACY.name));
    expect(line !== undefined, `the operator logged no "MSI skipped" line for ${LEGACY.name}`);
    ctx.print(`    operator log (${ctx.env.operatorLogPath}):`);
    ctx.print(indent(logLine(line ?? {})));
  },
};

const janeDenied: Step = {
  title: "jane may not write her own AzureIdentity",
  why: "RBAC lets jane (group dev-team) edit aad-pod-identity objects in team-a, but the validating webhook lets only the operator (and system:masters) change AzureIdentities.",
  async run(ctx) {
    const result = await kubectl(ctx, "jane", ["apply", "-f", join(ctx.env.dir ?? "", "jane-azureidentity.yaml")]);
    expect(result.code !== 0 && /denied the request/.test(result.stderr), "jane's AzureIdentity was not denied by the webhook");
  },
};

const bindingFilled: Step = {
  title: "jane's labelled binding gets spec.azureIdentity",
  why: `Her AzureIdentityBinding names the MSI only by the ${LABEL_PREFIX}/{name,resourcegroup,subscription} labels; the mutating webhook filled in the AzureIdentity the operator made for it in team-a.`,
  async run(ctx) {
    const applied = await kubectl(ctx, "jane", ["apply", "-f", join(ctx.env.dir ?? "", "jane-binding.yaml")]);
    expect(applied.code === 0, "jane's binding was not accepted");
    const shown = await kubectl(ctx, "jane", ["get", "azureidentitybinding", "shop", "-n", "team-a", "-o", "yaml"]);
    expect(new RegExp(`^  azureIdentity: ${identityName(SHOP)}$`, "m").test(shown.stdout), `spec.azureIdentity is not ${identityName(SHOP)}`);
  },
};

const newNamespace: Step = {
  title: "A new namespace gets its identity at once",
  why: `The MSI ${REPORTS.name} is tagged for ${NEW_NAMESPACE}, which did not exist. The operator watches namespaces, so creating it is enough: no Azure call, no waiting for the next full sync.`,
  async run(ctx) {
    const created = await kubectl(ctx, "admin", ["create", "namespace", NEW_NAMESPACE]);
    expect(created.code === 0, `could not create namespace ${NEW_NAMESPACE}`);
    const plane = ctx.env.plane;
    if (!plane) throw new Error("control plane is not running");
    const custom = plane.api("admin", CustomObjectsApi);
    await waitFor(
      () =>
        custom
          .getNamespacedCustomObject({ group: GROUP, version: "v1", namespace: NEW_NAMESPACE, plural: "azureidentities", name: identityName(REPORTS) })
          .catch(() => undefined),
      {
        timeoutMs: 30_000,
        what: `AzureIdentity ${identityName(REPORTS)} in ${NEW_NAMESPACE}`,
        stop: ctx.stop,
        check: () => ctx.env.assertOperatorRunning(),
        intervalMs: 25,
      },
    );
    const latency = identityLatency(await plane.auditEvents());
    ctx.print(`    ${NEW_NAMESPACE} got its identity in ${latency} ms (namespace stored -> operator's AzureIdentity stored, from the API server's audit log)`);
    const shown = await kubectl(ctx, "admin", ["get", "azureidentities", "-n", NEW_NAMESPACE]);
    expect(shown.stdout.includes(identityName(REPORTS)), `kubectl does not show ${identityName(REPORTS)}`);
  },
};

/** Milliseconds between the API server storing the namespace and storing the operator's identity in it. */
function identityLatency(events: AuditEvent[]): number {
  const ok = (event: AuditEvent) => event.stage === "ResponseComplete" && (event.responseStatus?.code ?? 0) < 300;
  const namespace = events.find(
    (event) => ok(event) && event.verb === "create" && event.objectRef?.resource === "namespaces" && event.objectRef.name === NEW_NAMESPACE,
  );
  const identity = events.find(
    (event) =>
      ok(event) &&
      event.user.username === OPERATOR_USER &&
      ["create", "patch", "update"].includes(event.verb) &&
      event.objectRef?.resource === "azureidentities" &&
      event.objectRef.namespace === NEW_NAMESPACE,
  );
  if (!namespace || !identity) throw new Error(`the audit log has no ${namespace ? "operator write in" : "create of"} namespace ${NEW_NAMESPACE}`);
  return Date.parse(identity.stageTimestamp) - Date.parse(namespace.stageTimestamp);
}

const metrics: Step = {
  title: "What the operator counted",
  why: "Its ops port serves Prometheus metrics: the last sync's outcome, the skipped MSI, and every admission decision from the steps above.",
  async run(ctx) {
    ctx.stop.throwIfRequested();
    const operator = ctx.env.operator;
    if (!operator) throw new Error("the operator is not running");
    ctx.print(`    $ curl -s ${ctx.env.opsUrl}/metrics | grep -E '^(${METRICS.join("|")})[{ ]'`);
    const { status, body } = await operator.get("/metrics");
    expect(status === 200, `/metrics answered ${status}`);
    const lines = metricsExcerpt(body, METRICS);
    ctx.print(indent(lines.join("\n")));
    expect(
      lines.some((line) => /^azuremsi_admission_requests_total\{.*result="denied"\} [1-9]/.test(line)),
      "no denied admission counted",
    );
  },
};

export const STEPS: readonly Step[] = [identitiesAppear, templateBreakingName, janeDenied, bindingFilled, newNamespace, metrics];

export async function walkThrough(ctx: StepContext): Promise<void> {
  for (const [index, step] of STEPS.entries()) {
    ctx.stop.throwIfRequested();
    ctx.print(stepHeader(index + 1, STEPS.length, step.title, step.why));
    try {
      await step.run(ctx);
    } catch (error) {
      throw new Error(`step ${index + 1} (${step.title}) failed: ${(error as Error).message}`, { cause: error });
    }
  }
}
