import { AAD_GROUP } from "../kube/resources.js";
import type { AdmissionRequest, Decision } from "./admission.js";

/**
 * A request for a resource a webhook does not guard is allowed with a warning: a mis-scoped
 * configuration must never block the cluster. `group` is the API group the webhook owns ("" is core).
 */
export function unowned(request: AdmissionRequest, resource: string, kind: string, configuration: string, group = AAD_GROUP): Decision | undefined {
  if (request.resource.group === group && request.resource.resource === resource) return undefined;
  return {
    allowed: true,
    result: "unowned",
    warnings: [`azure-msi-operator: the ${kind} webhook was called for ${describe(request)}; check the ${configuration}'s rules`],
  };
}

export function describe(request: AdmissionRequest): string {
  const { group, version, resource } = request.resource;
  return `${resource}${request.subResource ? `/${request.subResource}` : ""}.${group || "core"}/${version} (${request.operation})`;
}
