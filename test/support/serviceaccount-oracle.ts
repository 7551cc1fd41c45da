// The fuzzer's judge of the ServiceAccount webhooks, written out again from the rules rather than
// calling the webhook's code, so the oracle does not share its bugs: what a ServiceAccount may name
// in azure.workload.identity/client-id, and what the mutating webhook's patch must leave behind.
import jsonpatch from "fast-json-patch";
import type { AzureIdentity } from "../../src/kube/resources.js";
import { TEST_LOOKUP_KEYS } from "./webhook-server.js";

export const CLIENT_ID = "azure.workload.identity/client-id";
export const TENANT_ID = "azure.workload.identity/tenant-id";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
interface Meta {
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const metaOf = (object: Json | undefined): Meta | undefined =>
  object !== null && typeof object === "object" && !Array.isArray(object) ? (object.metadata as Meta | undefined) : undefined;
const isServiceAccountWrite = (request: JsonObject) => {
  const resource = request.resource as { group: string; resource: string };
  return resource.group === "" && resource.resource === "serviceaccounts" && (request.operation === "CREATE" || request.operation === "UPDATE");
};
const namespaceOf = (request: JsonObject) => (request.namespace as string | undefined) ?? metaOf(request.object)?.namespace ?? "";

/**
 * A write of a ServiceAccount may carry a client ID unless it is provably another namespace's MSI:
 * that of an identity of another namespace and of none of its own (any case, surrounding blanks
 * aside). A client ID the operator does not know (an app registration, another tool's MSI) passes
 * (not strict): it grants nothing without a FIC for the subject, which only the operator makes here.
 * system:masters may write any; an UPDATE may leave it as stored. Anything that is not such a write
 * is not this webhook's to refuse.
 */
export function mayNameClientId(
  request: JsonObject,
  identitiesIn: (namespace: string) => readonly AzureIdentity[],
  allIdentities: () => readonly AzureIdentity[],
): boolean {
  if (!isServiceAccountWrite(request)) return true;
  const value = metaOf(request.object)?.annotations?.[CLIENT_ID];
  if (value === undefined) return true;
  if (((request.userInfo as { groups?: string[] }).groups ?? []).includes("system:masters")) return true;
  if (request.operation === "UPDATE" && metaOf(request.oldObject)?.annotations?.[CLIENT_ID] === value) return true;
  const namespace = namespaceOf(request);
  const names = (identity: AzureIdentity) => identity.spec?.clientID?.toLowerCase() === value.trim().toLowerCase();
  if (identitiesIn(namespace).some(names)) return true;
  return !allIdentities().some((identity) => names(identity) && identity.metadata?.namespace !== namespace);
}

/** A patch must apply, touch only the annotations, and set exactly the labelled identity's client ID (and tenant, when it has one). */
export function judgeServiceAccountPatch(
  request: JsonObject,
  operations: jsonpatch.Operation[],
  identitiesIn: (namespace: string) => readonly AzureIdentity[],
): string[] {
  if (!isServiceAccountWrite(request)) return [`a patch for ${JSON.stringify(request.resource)} ${JSON.stringify(request.operation)}`];
  if (operations.some((operation) => operation.path !== "/metadata" && !operation.path.startsWith("/metadata/annotations")))
    return [`patch touches more than the annotations: ${JSON.stringify(operations)}`];
  const object = request.object as JsonObject;
  let patched: JsonObject;
  try {
    patched = jsonpatch.applyPatch(structuredClone(object), operations, true, false).newDocument;
  } catch (error) {
    return [`patch does not apply: ${(error as Error).message}`];
  }
  const labels = metaOf(object)?.labels;
  const label = (from: Record<string, string> | undefined, field: keyof typeof TEST_LOOKUP_KEYS) => from?.[TEST_LOOKUP_KEYS[field]]?.toLowerCase();
  const expected = identitiesIn(namespaceOf(request)).find((candidate) =>
    (["name", "resourcegroup", "subscription"] as const).every(
      (field) => label(labels, field) && label(labels, field) === label(candidate.metadata?.labels, field),
    ),
  );
  if (!expected) return [`patched, but no identity of namespace "${namespaceOf(request)}" has the labels ${JSON.stringify(labels)}`];
  const before = metaOf(object)?.annotations ?? {};
  const after = metaOf(patched)?.annotations ?? {};
  const tenant = expected.metadata?.annotations?.[TENANT_ID];
  const want: Record<string, string | undefined> = { ...before, [CLIENT_ID]: expected.spec?.clientID, ...(tenant ? { [TENANT_ID]: tenant } : {}) };
  const keys = new Set([...Object.keys(want), ...Object.keys(after)]);
  const wrong = [...keys].filter((key) => want[key] !== after[key]);
  return wrong.length > 0 ? [`annotations after the patch differ at ${wrong.join(", ")}: ${JSON.stringify(after)} instead of ${JSON.stringify(want)}`] : [];
}
