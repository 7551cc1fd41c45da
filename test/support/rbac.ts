// RBAC as data: which rule grants which request, the shipped RBAC with one rule taken out, and the
// requests a user made, read from the API server's audit log. Pure, so the least-privilege test can
// reason about rules without I/O.
import type { KubernetesObject, V1PolicyRule } from "@kubernetes/client-node";
import type { AuditEvent } from "../controlplane/controlplane.js";

/** One resource request as the authorizer sees it. */
export interface ResourceRequest {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  /** Undefined: cluster scope (or all namespaces). */
  namespace?: string;
  name?: string;
}

/** A rule of the ClusterRole or the Role, with where it is in the manifest. */
export interface LocatedRule {
  kind: "ClusterRole" | "Role";
  /** The Role's namespace; a ClusterRole bound by a ClusterRoleBinding applies everywhere. */
  namespace?: string;
  index: number;
  rule: V1PolicyRule;
}

type RoleObject = KubernetesObject & { rules?: V1PolicyRule[] };

const includesOrStar = (list: readonly string[] | undefined, value: string) => (list ?? []).some((item) => item === "*" || item === value);

export function ruleGrants(located: LocatedRule, request: ResourceRequest): boolean {
  const { rule } = located;
  if (located.kind === "Role" && request.namespace !== located.namespace) return false;
  const resource = request.subresource ? `${request.resource}/${request.subresource}` : request.resource;
  if (!includesOrStar(rule.apiGroups, request.apiGroup) || !includesOrStar(rule.resources, resource) || !includesOrStar(rule.verbs, request.verb)) return false;
  // resourceNames never match a request without a name (a plain list, or a create).
  return !rule.resourceNames?.length || (request.name !== undefined && rule.resourceNames.includes(request.name));
}

export function rulesOf(objects: readonly KubernetesObject[]): LocatedRule[] {
  return objects.flatMap((object) =>
    object.kind === "ClusterRole" || object.kind === "Role"
      ? ((object as RoleObject).rules ?? []).map((rule, index) => ({
          kind: object.kind as "ClusterRole" | "Role",
          ...(object.kind === "Role" ? { namespace: object.metadata?.namespace } : {}),
          index,
          rule,
        }))
      : [],
  );
}

/** The manifest's objects with one rule taken out (a deep copy; the input is untouched). */
export function withoutRule(objects: readonly KubernetesObject[], removed: LocatedRule): KubernetesObject[] {
  const copy = structuredClone(objects) as RoleObject[];
  const role = copy.find((object) => object.kind === removed.kind && (removed.kind === "ClusterRole" || object.metadata?.namespace === removed.namespace));
  if (!role?.rules?.[removed.index]) throw new Error(`no rule ${removed.index} in the ${removed.kind}`);
  role.rules.splice(removed.index, 1);
  return copy;
}

/**
 * Every request the rule allows, one per verb and name: `get` on the Lease by name, `create` on
 * leases. Least privilege means each of these was needed.
 */
export function grantsOf(located: LocatedRule): ResourceRequest[] {
  const { rule } = located;
  const names: (string | undefined)[] = rule.resourceNames?.length ? rule.resourceNames : [undefined];
  return (rule.apiGroups ?? []).flatMap((apiGroup) =>
    (rule.resources ?? []).flatMap((resource) =>
      rule.verbs.flatMap((verb) =>
        names.map((name) => ({ verb, apiGroup, resource, ...(located.namespace ? { namespace: located.namespace } : {}), ...(name ? { name } : {}) })),
      ),
    ),
  );
}

/** Whether an actual request used exactly this grant (same verb, resource and, for named grants, name). */
export function requestUses(request: ResourceRequest, grant: ResourceRequest): boolean {
  return (
    request.verb === grant.verb &&
    request.apiGroup === grant.apiGroup &&
    request.resource === grant.resource &&
    request.subresource === undefined &&
    (grant.namespace === undefined || request.namespace === grant.namespace) &&
    (grant.name === undefined || request.name === grant.name)
  );
}

export interface AuditedRequest extends ResourceRequest {
  /** False when the API server answered 403. */
  authorized: boolean;
}

/** The distinct resource requests `user` made, from audit events (non-resource URLs left out). */
export function requestsOf(events: readonly AuditEvent[], user: string): AuditedRequest[] {
  const seen = new Map<string, AuditedRequest>();
  for (const event of events) {
    const ref = event.objectRef;
    if (event.user.username !== user || !ref?.resource) continue;
    const request: AuditedRequest = {
      verb: event.verb,
      apiGroup: ref.apiGroup ?? "",
      resource: ref.resource,
      ...(ref.subresource ? { subresource: ref.subresource } : {}),
      ...(ref.namespace ? { namespace: ref.namespace } : {}),
      // A create names its object only in the body; the authorizer never sees that name.
      ...(ref.name && event.verb !== "create" ? { name: ref.name } : {}),
      authorized: event.responseStatus?.code !== 403,
    };
    const key = JSON.stringify({ ...request, authorized: undefined });
    const known = seen.get(key);
    if (!known) seen.set(key, request);
    else if (!request.authorized) known.authorized = false;
  }
  return [...seen.values()];
}

export function describeRequest(request: ResourceRequest): string {
  const resource = `${request.resource}${request.subresource ? `/${request.subresource}` : ""}${request.apiGroup ? `.${request.apiGroup}` : ""}`;
  return `${request.verb} ${resource}${request.name ? ` ${request.name}` : ""}${request.namespace ? ` in ${request.namespace}` : ""}`;
}

export function describeRule(located: LocatedRule): string {
  const { rule } = located;
  const names = rule.resourceNames?.length ? ` named ${rule.resourceNames.join(",")}` : "";
  return `${located.kind} rule ${located.index}: ${rule.verbs.join(",")} ${(rule.resources ?? []).join(",")}${names}`;
}
