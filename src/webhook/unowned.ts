import { AAD_GROUP } from "../kube/resources.js";
import type { AdmissionRequest, Decision } from "./admission.js";

/**
 * A request for a resource a webhook does not guard is allowed with a warning: a mis-scoped
 * configuration must never block the cluster.
 */
export function unowned(request: AdmissionRequest, resource: string, kind: string, configuration: string): Decision | undefined {
  if (request.resource.group === AAD_GROUP && request.resource.resource === resource) return undefined;
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
