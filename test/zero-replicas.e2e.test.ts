// With no replica listening, on the real API server: the validating webhook configuration rendered
// from the chart (its real matchConditions, from the same values as the Deployment's WEBHOOK_ALLOW_*
// env), pointed at a port where nothing listens. Whom the guard allows anyway never waits on it: MIC's
// service account creates and updates an AzureAssignedIdentity, the admins and the operator write
// AzureIdentities, a namespace holding every guarded kind deletes to completion; everyone else, jane
// first, is refused on every guarded kind (failurePolicy Fail: the webhook cannot be called). The
// whole principal × kind × operation table, as server-side dry-runs, matches decideGuarded.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CoreV1Api,
  loadAllYaml,
  RbacAuthorizationV1Api,
  type KubernetesObject,
  type V1Deployment,
  type V1ValidatingWebhookConfiguration,
} from "@kubernetes/client-node";
import { AAD_GROUP } from "../src/kube/resources.js";
import type { GuardedKind } from "../src/webhook/decide-guard.js";
import { KUSTOMIZE_IMAGE } from "../tools/manifests.js";
import { ControlPlane, OPERATOR_USER, type KubectlResult } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { createTeamNamespace } from "./support/developers.js";
import { Helm } from "./support/helm.js";
import { webhookConfigurationsFor } from "./support/manifests.js";
import { KINDS, OPERATIONS, policyOf, principalsFor, skipTable, type Principal } from "./support/match-conditions.js";
import { eventually } from "./support/operator.js";

/** The chart's values for this cluster: an admin user and a second admin group besides system:masters; MIC's default service accounts. */
const VALUES = "webhook:\n  allowUsers: [break-glass@example.com]\n  allowGroups: [system:masters, platform-admins]\n";
const MIC_NAMESPACE = "default";
const MIC_SERVICE_ACCOUNT = "aad-pod-id-mic-service-account";
/** kube-controller-manager's deletion of a namespace holding every guarded kind, with no replica. */
const CLEANUP_BOUND_MS = 60_000;
/** How the API server refuses when it cannot call a fail-closed webhook. */
const UNREACHABLE = /failed calling webhook "[a-z]+\.azure-msi-operator\.aadpodidentity\.k8s\.io".*connection refused/s;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace: string; [key: string]: unknown }; spec?: unknown; status?: unknown };

const identity = (name: string, namespace: string, clientID = "22222222-0000-0000-0000-0000000000b1"): Obj => ({
  apiVersion: `${AAD_GROUP}/v1`,
  kind: "AzureIdentity",
  metadata: { name, namespace },
  spec: { type: 0, resourceID: `/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/${name}`, clientID },
});
const assigned = (name: string, namespace: string, status?: string): Obj => ({
  apiVersion: `${AAD_GROUP}/v1`,
  kind: "AzureAssignedIdentity",
  metadata: { name, namespace },
  spec: {
    azureIdentityRef: identity("shop", namespace),
    azureBindingRef: {
      apiVersion: `${AAD_GROUP}/v1`,
      kind: "AzureIdentityBinding",
      metadata: { name: "b", namespace },
      spec: { azureIdentity: "shop", selector: "b" },
    },
    pod: "p",
    podNamespace: namespace,
    nodename: "node-1",
  },
  ...(status ? { status: { status, availableReplicas: 1 } } : {}),
});
const exception = (name: string, namespace: string): Obj => ({
  apiVersion: `${AAD_GROUP}/v1`,
  kind: "AzurePodIdentityException",
  metadata: { name, namespace },
  spec: { podLabels: { app: "skip-nmi" } },
});
const OBJECTS: Record<GuardedKind, (name: string, namespace: string) => Obj> = {
  AzureIdentity: (name, namespace) => identity(name, namespace),
  AzureAssignedIdentity: (name, namespace) => assigned(name, namespace),
  AzurePodIdentityException: exception,
};
const RESOURCE: Record<GuardedKind, string> = {
  AzureIdentity: "azureidentities.aadpodidentity.k8s.io",
  AzureAssignedIdentity: "azureassignedidentities.aadpodidentity.k8s.io",
  AzurePodIdentityException: "azurepodidentityexceptions.aadpodidentity.k8s.io",
};

describe("zero replicas: whom the guard allows anyway skips the webhook; jane is still refused", () => {
  let plane: ControlPlane;
  let helm: Helm;
  let validating: V1ValidatingWebhookConfiguration;
  let deployment: V1Deployment;
  let mic: string;

  const ok = (result: KubectlResult, what: string) => assert.equal(result.code, 0, `${what}: ${result.stderr}`);
  const refused = (result: KubectlResult, what: string) => {
    assert.notEqual(result.code, 0, `${what}: refused (stdout ${result.stdout})`);
    assert.match(result.stderr, UNREACHABLE, what);
  };
  /** kubectl as `principal`, impersonated by the admin (the API server adds a ServiceAccount's groups and system:authenticated itself). */
  const as = (principal: Principal, args: string[], stdin?: string) => {
    const groups = (principal.groups ?? []).filter((group) => group !== "system:authenticated" && !group.startsWith("system:serviceaccounts"));
    const impersonate = principal.who === "jane" ? [] : ["--as", principal.username, ...groups.flatMap((group) => ["--as-group", group])];
    return plane.kubectl(principal.who === "jane" ? "jane" : "admin", [...impersonate, ...args], stdin === undefined ? {} : { stdin });
  };
  const resourceVersions = async (): Promise<Record<string, string[]>> =>
    Object.fromEntries(
      await Promise.all(
        KINDS.map(async (kind): Promise<[string, string[]]> => {
          const items = JSON.parse(await plane.kubectlOrThrow("admin", ["get", RESOURCE[kind], "-A", "-o", "json"])) as { items: Obj[] };
          return [kind, items.items.map((item) => `${item.metadata.namespace}/${item.metadata.name}@${String(item.metadata.resourceVersion)}`).sort()];
        }),
      ),
    );

  before(async () => {
    [plane, helm] = await Promise.all([ControlPlane.start({ controllerManager: true }), Helm.create()]);
    const rendered = await helm.template({ values: VALUES, extra: ["--set", KUSTOMIZE_IMAGE] });
    assert.equal(rendered.code, 0, rendered.stderr);
    const objects = JSON.parse(JSON.stringify(loadAllYaml(rendered.stdout))) as KubernetesObject[];
    deployment = objects.find((object) => object.kind === "Deployment") as V1Deployment;
    // Nothing listens there: the port was free a moment ago and no replica is started (any other
    // listener would fail TLS verification just the same).
    const port = await reservePort();
    const configurations = await webhookConfigurationsFor(
      `https://127.0.0.1:${port}`,
      objects.filter((object) => /^(Validating|Mutating)WebhookConfiguration$/.test(object.kind ?? "")),
    );
    validating = configurations.find((object) => object.kind === "ValidatingWebhookConfiguration") as V1ValidatingWebhookConfiguration;
    await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: configurations }) });
    // RBAC lets every authenticated user write every aadpodidentity.k8s.io kind, so only admission refuses.
    const rbac = plane.api("admin", RbacAuthorizationV1Api);
    await rbac.createClusterRole({ body: { metadata: { name: "aad-everything" }, rules: [{ apiGroups: [AAD_GROUP], resources: ["*"], verbs: ["*"] }] } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: "aad-everything" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "aad-everything" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:authenticated" }],
      },
    });
    for (const name of ["team-a", "doomed"]) await createTeamNamespace(plane, name);
    mic = await plane.serviceAccountKubeconfig(MIC_NAMESPACE, MIC_SERVICE_ACCOUNT);
    // One of each kind to update and delete (the admin, in system:masters, skips the webhook).
    for (const kind of KINDS) await plane.kubectlOrThrow("admin", ["create", "-f", "-"], { stdin: JSON.stringify(OBJECTS[kind]("existing", "team-a")) });
  });
  after(async () => {
    await Promise.all([plane?.stop(), helm?.close()]);
  });

  test("MIC's service account creates an AzureAssignedIdentity, updates its spec and status (replace and patch) and deletes it", async (t) => {
    const kubectl = (args: string[], object?: Obj) => plane.kubectlWith(mic, args, object ? { stdin: JSON.stringify(object) } : {});
    const started = performance.now();
    ok(await kubectl(["create", "-f", "-"], assigned("mic-made", "team-a")), "create");
    const stored = JSON.parse((await kubectl(["get", RESOURCE.AzureAssignedIdentity, "mic-made", "-n", "team-a", "-o", "json"])).stdout) as Obj;
    ok(await kubectl(["replace", "-f", "-"], { ...stored, ...assigned("mic-made", "team-a", "Created"), metadata: stored.metadata }), "replace with a status");
    ok(
      await kubectl([
        "patch",
        RESOURCE.AzureAssignedIdentity,
        "mic-made",
        "-n",
        "team-a",
        "--type=merge",
        "-p",
        JSON.stringify({ status: { status: "Assigned" } }),
      ]),
      "patch the status",
    );
    const patched = JSON.parse((await kubectl(["get", RESOURCE.AzureAssignedIdentity, "mic-made", "-n", "team-a", "-o", "json"])).stdout) as Obj;
    assert.deepEqual(patched.status, { status: "Assigned", availableReplicas: 1 });
    ok(await kubectl(["delete", RESOURCE.AzureAssignedIdentity, "mic-made", "-n", "team-a"]), "delete");
    // Its RBAC allows the other kinds here; the webhook, which cannot be called, is what refuses them.
    refused(await kubectl(["create", "-f", "-"], identity("mic-identity", "team-a")), "MIC creating an AzureIdentity");
    refused(await kubectl(["create", "-f", "-"], exception("mic-exception", "team-a")), "MIC creating an AzurePodIdentityException");
    t.diagnostic(`MIC: create, replace, status patch, delete with no replica in ${Math.round(performance.now() - started)} ms`);
  });

  test("the admins (system:masters, the other allowed group, the allowed user) and the operator's ServiceAccount create, update and delete AzureIdentities", async () => {
    const writers: Array<[string, (args: string[], stdin?: string) => Promise<KubectlResult>]> = [
      ["admin (system:masters)", (args, stdin) => plane.kubectl("admin", args, stdin === undefined ? {} : { stdin })],
      ["a member of platform-admins", (args, stdin) => as({ who: "p", username: "pat", groups: ["platform-admins"] }, args, stdin)],
      ["break-glass@example.com", (args, stdin) => as({ who: "b", username: "break-glass@example.com" }, args, stdin)],
      ["the operator (its token)", (args, stdin) => plane.kubectl("operator", args, stdin === undefined ? {} : { stdin })],
    ];
    for (const [who, kubectl] of writers) {
      const name = `by-${who.replace(/[^a-z]+/g, "-").replace(/^-|-$/g, "")}`;
      ok(await kubectl(["create", "-f", "-"], JSON.stringify(identity(name, "team-a"))), `${who}: create`);
      ok(await kubectl(["label", RESOURCE.AzureIdentity, name, "-n", "team-a", "reviewed=yes"]), `${who}: update`);
      ok(await kubectl(["delete", RESOURCE.AzureIdentity, name, "-n", "team-a"]), `${who}: delete`);
    }
  });

  test("jane is refused on every guarded kind: create, update, delete; nothing is written", async () => {
    const jane = principalsFor(policyOf(deployment)).find((principal) => principal.who === "jane")!;
    const before = await resourceVersions();
    for (const kind of KINDS) {
      refused(await as(jane, ["create", "-f", "-"], JSON.stringify(OBJECTS[kind]("janes", "team-a"))), `jane: create ${kind}`);
      refused(await as(jane, ["label", RESOURCE[kind], "existing", "-n", "team-a", "stolen=yes"]), `jane: update ${kind}`);
      refused(await as(jane, ["delete", RESOURCE[kind], "existing", "-n", "team-a"]), `jane: delete ${kind}`);
    }
    assert.deepEqual(await resourceVersions(), before, "nothing written");
  });

  test("every principal × guarded kind × operation (server-side dry-run): admitted without the webhook exactly where decideGuarded allows with the Deployment's env", async (t) => {
    const policy = policyOf(deployment);
    assert.equal(policy.operatorUser, OPERATOR_USER, "the chart's operator is the ServiceAccount the control plane's operator token is for");
    // The API server always adds system:authenticated, so a user without groups cannot be impersonated.
    const principals = principalsFor(policy).filter((principal) => principal.groups !== undefined);
    const expected = skipTable(validating, policy).filter((cell) => principals.some((principal) => principal.who === cell.who));
    const run = async (principal: Principal, kind: GuardedKind, operation: (typeof OPERATIONS)[number]) => {
      const dry = "--dry-run=server";
      const result =
        operation === "CREATE"
          ? await as(principal, ["create", dry, "-f", "-"], JSON.stringify(OBJECTS[kind]("dry", "team-a")))
          : operation === "UPDATE"
            ? await as(principal, ["label", dry, RESOURCE[kind], "existing", "-n", "team-a", "probe=yes"])
            : await as(principal, ["delete", dry, RESOURCE[kind], "existing", "-n", "team-a"]);
      if (result.code !== 0) assert.match(result.stderr, UNREACHABLE, `${principal.who} ${operation} ${kind}: refused only by the webhook`);
      return { who: principal.who, kind, operation, admitted: result.code === 0 };
    };
    const jobs = principals.flatMap((principal) => KINDS.flatMap((kind) => OPERATIONS.map((operation) => () => run(principal, kind, operation))));
    const started = performance.now();
    const actual: Array<Awaited<ReturnType<typeof run>>> = [];
    // Four kubectl processes at a time: the machine is shared.
    for (let at = 0; at < jobs.length; at += 4) actual.push(...(await Promise.all(jobs.slice(at, at + 4).map((job) => job()))));
    const key = (cell: { who: string; kind: string; operation: string }) => `${cell.who} ${cell.operation} ${cell.kind}`;
    const wrong = actual.filter((cell) => cell.admitted !== expected.find((want) => key(want) === key(cell))?.guardAllows).map(key);
    assert.deepEqual(wrong, [], "the API server admits without the webhook exactly what the guard allows");
    assert.equal(actual.length, expected.length);
    const admitted = actual.filter((cell) => cell.admitted).length;
    t.diagnostic(
      `${actual.length} dry-run writes by ${principals.length} principals with no replica: ${admitted} admitted (all allowed by the guard), ` +
        `${actual.length - admitted} refused by failurePolicy, 0 mismatches, in ${Math.round(performance.now() - started)} ms`,
    );
  });

  test("a namespace holding every guarded kind deletes to completion with no replica", { timeout: CLEANUP_BOUND_MS + 30_000 }, async (t) => {
    for (const kind of KINDS) await plane.kubectlOrThrow("admin", ["create", "-f", "-"], { stdin: JSON.stringify(OBJECTS[kind]("doomed", "doomed")) });
    const core = plane.api("admin", CoreV1Api);
    const started = performance.now();
    await core.deleteNamespace({ name: "doomed" });
    await eventually(
      async () => {
        const gone = await core.readNamespace({ name: "doomed" }).then(
          () => undefined,
          (error: Error & { code?: number }) => {
            if (error.code === 404) return true;
            throw error;
          },
        );
        return gone;
      },
      CLEANUP_BOUND_MS,
      "namespace doomed deleted",
    );
    const ms = Math.round(performance.now() - started);
    for (const kind of KINDS) {
      const items = JSON.parse(await plane.kubectlOrThrow("admin", ["get", RESOURCE[kind], "-n", "doomed", "-o", "json"])) as { items: unknown[] };
      assert.equal(items.items.length, 0, kind);
    }
    t.diagnostic(`namespace with every guarded kind deleted in ${ms} ms with no replica listening`);
  });
});
