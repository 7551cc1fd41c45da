import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import type { ControlPlane } from "../controlplane/controlplane.js";

const AAD_GROUP = "aadpodidentity.k8s.io";

/**
 * A team namespace where group dev-team (jane's) may do everything on aadpodidentity.k8s.io and on
 * pods, the broad RBAC a developer often has (aad-pod-identity's chart grants every namespace editor
 * its kinds): only the webhooks stand between her and the identities.
 */
export async function createTeamNamespace(plane: ControlPlane, name: string): Promise<void> {
  await plane.api("admin", CoreV1Api).createNamespace({ body: { metadata: { name } } });
  const rbac = plane.api("admin", RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: name,
    body: {
      metadata: { name: "aad-everything" },
      rules: [
        { apiGroups: [AAD_GROUP], resources: ["*"], verbs: ["*"] },
        { apiGroups: [""], resources: ["pods"], verbs: ["*"] },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: name,
    body: {
      metadata: { name: "dev-team-aad" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "aad-everything" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "dev-team" }],
    },
  });
}

/**
 * Lets group dev-team (jane's) write ServiceAccounts in `namespace`, as a namespace editor may
 * (the built-in `edit` role grants it): in the workload identity mode only the webhooks stand
 * between her and another team's client ID.
 */
export async function allowServiceAccountWrites(plane: ControlPlane, namespace: string): Promise<void> {
  const rbac = plane.api("admin", RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata: { name: "serviceaccounts" }, rules: [{ apiGroups: [""], resources: ["serviceaccounts"], verbs: ["*"] }] },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: "dev-team-serviceaccounts" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "serviceaccounts" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "dev-team" }],
    },
  });
}
