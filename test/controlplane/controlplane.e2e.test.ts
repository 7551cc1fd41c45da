import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connect, type Server } from "node:net";
import { AuthenticationV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { ControlPlane, OPERATOR_USER } from "./controlplane.js";
import { listenOn, PortAllocator, portOf } from "./ports.js";

const GROUP = "aadpodidentity.k8s.io";

function statusOf(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

describe("local control plane", () => {
  let plane: ControlPlane;
  before(async () => {
    plane = await ControlPlane.start({ controllerManager: true });
  });
  after(async () => plane?.stop());

  test("serves the pinned Kubernetes version", async () => {
    const { status, body } = await plane.adminGet("/version");
    assert.equal(status, 200);
    assert.match((JSON.parse(body) as { gitVersion: string }).gitVersion, /^v1\.\d+\.\d+$/);
  });

  test("kubectl apply of an AzureIdentity as admin is read back by client-node", async () => {
    await plane.kubectlOrThrow("admin", ["create", "namespace", "team-a"]);
    const manifest = {
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentity",
      metadata: { name: "app-1234", namespace: "team-a" },
      spec: { type: 0, resourceID: "/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/app", clientID: "1234" },
    };
    const applied = await plane.kubectlOrThrow("admin", ["apply", "-f", "-"], { stdin: JSON.stringify(manifest) });
    assert.match(applied, /azureidentity.aadpodidentity.k8s.io\/app-1234 created/);
    const custom = plane.api("admin", CustomObjectsApi);
    const stored = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: "v1",
      namespace: "team-a",
      plural: "azureidentities",
      name: "app-1234",
    })) as typeof manifest;
    assert.deepEqual(stored.spec, manifest.spec);
  });

  test("the upstream CRD schema is in force: spec.type must be an integer", async () => {
    const bad = {
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentity",
      metadata: { name: "bad-type", namespace: "team-a" },
      spec: { type: "zero", resourceID: "/x", clientID: "c" },
    };
    const result = await plane.kubectl("admin", ["apply", "-f", "-"], { stdin: JSON.stringify(bad) });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /spec\.type: Invalid value: "string": spec\.type in body must be of type integer/);
  });

  test("jane is forbidden what RBAC does not grant, and allowed what it does", async () => {
    const core = plane.api("jane", CoreV1Api);
    await assert.rejects(core.listNamespacedSecret({ namespace: "kube-system" }), (error) => statusOf(error) === 403);
    const denied = await plane.kubectl("jane", ["get", "azureidentities", "-n", "team-a"]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /User "jane" cannot list resource "azureidentities"/);

    const rbac = plane.api("admin", RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: "team-a",
      body: { metadata: { name: "read-identities" }, rules: [{ apiGroups: [GROUP], resources: ["azureidentities"], verbs: ["get", "list"] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: "team-a",
      body: {
        metadata: { name: "dev-team-reads" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "read-identities" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "dev-team" }],
      },
    });
    const allowed = await plane.kubectlOrThrow("jane", ["get", "azureidentities", "-n", "team-a", "-o", "name"]);
    assert.match(allowed, /azureidentity.aadpodidentity.k8s.io\/app-1234/);
  });

  test("the operator client authenticates as its service account", async () => {
    const review = await plane.api("operator", AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    assert.equal(review.status?.userInfo?.username, OPERATOR_USER);
    assert.ok(review.status?.userInfo?.groups?.includes("system:serviceaccounts:azure-msi-operator"));
    const whoami = await plane.kubectlOrThrow("operator", ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert.equal(whoami, OPERATOR_USER);
  });

  test("the audit log records writes with their user", async () => {
    const events = await plane.auditEvents();
    const create = events.find((e) => e.verb === "create" && e.objectRef?.resource === "azureidentities" && e.objectRef.name === "app-1234");
    assert.ok(create, "the AzureIdentity create was audited");
    assert.equal(create.user.username, "admin");
  });

  test("kube-controller-manager really deletes a namespace and its custom objects", async () => {
    await plane.kubectlOrThrow("admin", ["delete", "namespace", "team-a", "--wait=true", "--timeout=90s"]);
    const core = plane.api("admin", CoreV1Api);
    await assert.rejects(core.readNamespace({ name: "team-a" }), (error) => statusOf(error) === 404);
    const events = await plane.auditEvents();
    const gcDelete = events.find((e) => e.verb === "deletecollection" && e.objectRef?.resource === "azureidentities");
    assert.equal(gcDelete?.user.username, "system:serviceaccount:kube-system:namespace-controller");
  });
});

describe("control plane teardown", () => {
  test("stop leaves no process, port or directory behind", async () => {
    const plane = await ControlPlane.start({ crds: false });
    const port = Number(new URL(plane.server).port);
    const pids = plane.pids();
    assert.equal(pids.length, 2);
    await plane.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), "process is gone");
    assert.equal(existsSync(plane.dir), false);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = connect(port, "127.0.0.1", () => resolve(socket.end()));
        socket.on("error", reject);
      }),
      /ECONNREFUSED/,
    );
  });
});

describe("control plane ports", () => {
  test("a port taken between its reservation and kube-apiserver's bind: the boot is retried with fresh ports", async () => {
    // Another process binds the first port the plane reserves (kube-apiserver's) the moment the
    // allocator lets go of it: what a busy CI machine does by chance.
    const thieves: Server[] = [];
    let offers = 0;
    const allocator = new PortAllocator(async () => {
      const server = await listenOn(0);
      const port = portOf(server);
      if (offers++ === 0) server.once("close", () => void listenOn(port).then((thief) => thieves.push(thief)));
      return server;
    });
    const plane = await ControlPlane.start({ crds: false, ports: allocator });
    try {
      assert.equal(thieves.length, 1, "the first port was taken");
      const taken = portOf(thieves[0]!);
      assert.equal(plane.boots, 2, "booted again after kube-apiserver could not bind");
      assert.notEqual(Number(new URL(plane.server).port), taken);
      assert.equal((await plane.adminGet("/readyz")).status, 200);
    } finally {
      await plane.stop();
      // Not awaited: the thief still holds the connection of a readiness probe that found it, and
      // unreferenced, it keeps nothing alive.
      for (const thief of thieves) thief.close();
    }
  });
});
