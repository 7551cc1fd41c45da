// fast-check generators of requests to the admission webhooks, and the pure judge of their answers.
// Every case says what must come back: a well-formed AdmissionReview answer, a given 4xx, or "any 4xx
// or a well-formed answer" where the outcome depends on HTTP details not worth modelling.
import fc from "fast-check";
import jsonpatch from "fast-json-patch";
import type { AzureIdentity } from "../../src/kube/resources.js";
import {
  ADMISSION_BODY_LIMIT,
  MUTATE_BINDING_PATH,
  MUTATE_SERVICE_ACCOUNT_PATH,
  VALIDATE_ASSIGNED_IDENTITY_PATH,
  VALIDATE_EXCEPTION_PATH,
  VALIDATE_IDENTITY_PATH,
  VALIDATE_SERVICE_ACCOUNT_PATH,
} from "../../src/webhook/server.js";
import { NAMESPACE_CLEANUP_USERS } from "../../src/webhook/decide-guard.js";
import { CLIENT_ID, judgeServiceAccountPatch, mayNameClientId, TENANT_ID } from "./serviceaccount-oracle.js";
import { TEST_LOOKUP_KEYS, TEST_MIC_USER, TEST_OPERATOR_USER, type Answer } from "./webhook-server.js";

const AAD = "aadpodidentity.k8s.io";
const GUARDED_RESOURCES = ["azureidentities", "azureassignedidentities", "azurepodidentityexceptions"] as const;
const SUB_A = "00000000-0000-0000-0000-00000000000a";
const SUB_B = "00000000-0000-0000-0000-00000000000b";
const API_VERSIONS = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] as const;
const OPERATIONS = ["CREATE", "UPDATE", "DELETE", "CONNECT"] as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export type Category =
  | "valid"
  | "wrong-type"
  | "missing-field"
  | "truncated"
  | "random-json"
  | "random-bytes"
  | "poisoned"
  | "content-type"
  | "method-or-path"
  | "near-limit"
  | "deep";
export type Expectation = "answer" | 400 | 404 | 413 | 415 | "answer-or-4xx";

export interface FuzzCase {
  category: Category;
  path: string;
  method: string;
  contentType: string | undefined;
  chunked: boolean;
  /** Built on demand: near-limit bodies are megabytes and fast-check keeps cases while shrinking. */
  body: () => string | Buffer;
  /** What was sent, when it is an AdmissionReview whose answer can be checked in detail. */
  review?: JsonObject;
  /** The uid and apiVersion an answer must echo, when the body is too large to keep as `review`. */
  echo?: { uid: string; apiVersion: string };
  expect: Expectation;
  [fc.toStringMethod]: () => string;
}

// The informer cache the mutating webhooks answer from: one identity per namespace (team-a's knows its tenant).
const identity = (name: string, namespace: string, msi: string, resourcegroup: string, subscription: string, tenant?: string): AzureIdentity => ({
  apiVersion: `${AAD}/v1`,
  kind: "AzureIdentity",
  metadata: {
    name,
    namespace,
    labels: { [TEST_LOOKUP_KEYS.name]: msi, [TEST_LOOKUP_KEYS.resourcegroup]: resourcegroup, [TEST_LOOKUP_KEYS.subscription]: subscription },
    ...(tenant ? { annotations: { [TENANT_ID]: tenant } } : {}),
  },
  spec: {
    type: 0,
    resourceID: `/subscriptions/${subscription}/resourcegroups/${resourcegroup}/providers/microsoft.managedidentity/userassignedidentities/${msi}`,
    clientID: `${msi}-client`,
  },
});
const CACHE: Record<string, AzureIdentity[]> = {
  "team-a": [identity("app-a", "team-a", "app", "rg-a", SUB_A, "tenant-a")],
  "team-b": [identity("other-b", "team-b", "other", "rg-b", SUB_B)],
};
export const identitiesIn = (namespace: string): readonly AzureIdentity[] => CACHE[namespace] ?? [];
export const allIdentities = (): readonly AzureIdentity[] => Object.values(CACHE).flat();

/** Keys that Fastify's JSON parser rejects on purpose (prototype poisoning); kept out of valid bodies. */
const POISON = /"(?:__proto__|constructor|prototype)"/;
const clean = <T>(arbitrary: fc.Arbitrary<T>) => arbitrary.filter((value) => !POISON.test(JSON.stringify(value) ?? ""));

const text = fc.string({ unit: "binary", maxLength: 24 });
const jsonValue = clean(fc.jsonValue({ maxDepth: 3, stringUnit: "binary" })) as fc.Arbitrary<Json>;
const jsonObject = clean(fc.dictionary(text, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 })) as fc.Arbitrary<JsonObject>;
const stringMap = clean(fc.dictionary(text, text, { maxKeys: 4 }));
// Sometimes a client ID: team-a's or team-b's (as the cache spells it, or upper-cased), or anything.
const annotations = fc.oneof(
  stringMap,
  clean(
    fc
      .tuple(stringMap, fc.oneof(fc.constantFrom("app-client", "other-client", "APP-CLIENT", ""), text), fc.option(text, { nil: undefined }))
      .map(([other, clientId, tenant]) => ({ ...other, [CLIENT_ID]: clientId, ...(tenant === undefined ? {} : { [TENANT_ID]: tenant }) })),
  ),
);

const lookupLabels = fc
  .oneof(
    fc.constant({ name: "app", resourcegroup: "rg-a", subscription: SUB_A }),
    fc.constant({ name: "other", resourcegroup: "rg-b", subscription: SUB_B }),
    fc.constant({ name: "APP", resourcegroup: "RG-A", subscription: SUB_A.toUpperCase() }),
    fc.record({ name: text, resourcegroup: text, subscription: text }),
    fc.record({ name: fc.constant("app"), resourcegroup: fc.constant("rg-a") }),
  )
  .map((values) => Object.fromEntries(Object.entries(values).map(([field, value]) => [TEST_LOOKUP_KEYS[field as keyof typeof TEST_LOOKUP_KEYS], value])));

const namespace = fc.oneof(fc.constantFrom("team-a", "team-b", "team-c", ""), text);

const kubeObject: fc.Arbitrary<JsonObject> = fc
  .record(
    {
      apiVersion: fc.oneof(fc.constant(`${AAD}/v1`), text),
      kind: fc.constantFrom("AzureIdentityBinding", "AzureIdentity", "Pod", "ServiceAccount"),
      metadata: fc.record(
        { name: text, namespace, labels: fc.tuple(lookupLabels, stringMap).map(([lookup, other]) => ({ ...other, ...lookup })), annotations },
        { requiredKeys: [] },
      ),
      spec: fc.oneof(jsonObject, fc.record({ selector: text, azureIdentity: text }, { requiredKeys: [] })),
      status: jsonValue,
    },
    { requiredKeys: [] },
  )
  .map((object) => object as JsonObject);

const userInfo = fc.record(
  {
    username: fc.oneof(fc.constantFrom(TEST_OPERATOR_USER, TEST_MIC_USER, "jane", "admin", ...NAMESPACE_CLEANUP_USERS), text),
    uid: text,
    groups: fc.array(fc.oneof(fc.constantFrom("system:masters", "dev-team", "system:authenticated"), text), { maxLength: 4 }),
    extra: clean(fc.dictionary(text, fc.array(text, { maxLength: 3 }), { maxKeys: 3 })),
  },
  { requiredKeys: [] },
);

const SERVICE_ACCOUNTS = { group: "", version: "v1", resource: "serviceaccounts" };
const resource = fc.oneof(
  fc.constantFrom(...GUARDED_RESOURCES, "azureidentitybindings").map((name) => ({ group: AAD, version: "v1", resource: name })),
  fc.constant(SERVICE_ACCOUNTS),
  fc.record({
    group: fc.oneof(fc.constantFrom(AAD, ""), text),
    version: text,
    resource: fc.oneof(fc.constantFrom(...GUARDED_RESOURCES, "azureidentitybindings", "pods", "serviceaccounts"), text),
  }),
);

/** A review that satisfies the webhook's schema; extra fields the API server sends ride along. */
export const validReview: fc.Arbitrary<JsonObject> = fc
  .record({
    apiVersion: fc.constantFrom(...API_VERSIONS),
    request: fc.record(
      {
        uid: fc.oneof(fc.uuid(), fc.string({ unit: "binary", minLength: 1, maxLength: 256 })),
        kind: fc.record({ group: fc.oneof(fc.constant(AAD), text), version: text, kind: text }),
        resource,
        subResource: fc.constantFrom("status", ""),
        name: text,
        namespace,
        operation: fc.constantFrom(...OPERATIONS),
        userInfo,
        object: fc.oneof(kubeObject, fc.constant(null)),
        oldObject: fc.oneof(kubeObject, fc.constant(null)),
        dryRun: fc.boolean(),
        options: jsonValue,
        requestKind: jsonObject,
      },
      { requiredKeys: ["uid", "kind", "resource", "operation", "userInfo"] },
    ),
  })
  .map(({ apiVersion, request }): JsonObject => ({ apiVersion, kind: "AdmissionReview", request }));

// The schema's fields with the JSON types it accepts there; a value of any other type must be a 400.
type JsonType = "string" | "number" | "boolean" | "null" | "array" | "object";
const TYPED_FIELDS: [path: string, accepts: JsonType[]][] = [
  ["apiVersion", ["string"]],
  ["kind", ["string"]],
  ["request", ["object"]],
  ["request.uid", ["string"]],
  ["request.kind", ["object"]],
  ["request.kind.group", ["string"]],
  ["request.kind.version", ["string"]],
  ["request.kind.kind", ["string"]],
  ["request.resource", ["object"]],
  ["request.resource.group", ["string"]],
  ["request.resource.version", ["string"]],
  ["request.resource.resource", ["string"]],
  ["request.subResource", ["string"]],
  ["request.name", ["string"]],
  ["request.namespace", ["string"]],
  ["request.operation", ["string"]],
  ["request.userInfo", ["object"]],
  ["request.userInfo.username", ["string"]],
  ["request.userInfo.uid", ["string"]],
  ["request.userInfo.groups", ["array"]],
  ["request.userInfo.groups.0", ["string"]],
  ["request.userInfo.extra", ["object"]],
  ["request.userInfo.extra.scopes", ["array"]],
  ["request.userInfo.extra.scopes.0", ["string"]],
  ["request.object", ["object", "null"]],
  ["request.object.metadata", ["object"]],
  ["request.object.metadata.name", ["string"]],
  ["request.object.metadata.namespace", ["string"]],
  ["request.object.metadata.labels", ["object"]],
  ["request.object.metadata.labels.msi.azure.k8s.io/name", ["string"]],
  ["request.object.metadata.annotations", ["object"]],
  ["request.object.metadata.annotations.note", ["string"]],
  ["request.object.spec", ["object"]],
  ["request.oldObject", ["object", "null"]],
  ["request.dryRun", ["boolean"]],
];
// Strings the schema constrains (enum, const, length): a string outside them must be a 400 too.
const BAD_STRINGS: Record<string, fc.Arbitrary<string>> = {
  apiVersion: fc
    .oneof(fc.constantFrom("admission.k8s.io/v2", "v1", "admission.k8s.io/V1", " admission.k8s.io/v1", ""), text)
    .filter((value) => !(API_VERSIONS as readonly string[]).includes(value)),
  kind: fc.oneof(fc.constantFrom("Pod", "admissionreview", "AdmissionReviewList", ""), text).filter((value) => value !== "AdmissionReview"),
  "request.uid": fc.oneof(fc.constant(""), fc.string({ unit: "grapheme-ascii", minLength: 257, maxLength: 400 })),
  "request.operation": fc.oneof(fc.constantFrom("create", "PATCH", "GET", ""), text).filter((value) => !(OPERATIONS as readonly string[]).includes(value)),
};
const REQUIRED = [
  "apiVersion",
  "kind",
  "request",
  "request.uid",
  "request.kind",
  "request.resource",
  "request.operation",
  "request.userInfo",
  "request.kind.group",
  "request.resource.resource",
];

const jsonTypeOf = (value: Json): JsonType => (value === null ? "null" : Array.isArray(value) ? "array" : (typeof value as JsonType));
const anyJson: fc.Arbitrary<Json> = fc.oneof(
  text,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(text, { maxLength: 3 }),
  stringMap,
  fc.constantFrom("true", "1", "null", "{}"),
);
const wrongValue = (accepts: JsonType[]) => anyJson.filter((value) => !accepts.includes(jsonTypeOf(value)));

/** Sets `value` at a dotted path (the label key keeps its own dots), creating objects on the way. */
function setAt(root: JsonObject, path: string, value: Json | undefined): void {
  const parts = path.startsWith("request.object.metadata.labels.") ? [...path.split(".").slice(0, 4), path.split(".").slice(4).join(".")] : path.split(".");
  let node: JsonObject | Json[] = root;
  for (let index = 0; index < parts.length - 1; index++) {
    const part = parts[index]!;
    const next: Json | undefined = Array.isArray(node) ? node[Number(part)] : node[part];
    const fresh: JsonObject | Json[] = next !== null && typeof next === "object" ? next : /^\d+$/.test(parts[index + 1]!) ? [] : {};
    if (Array.isArray(node)) node[Number(part)] = fresh;
    else node[part] = fresh;
    node = fresh;
  }
  const last = parts[parts.length - 1]!;
  if (Array.isArray(node)) {
    if (value !== undefined) node[Number(last)] = value;
  } else if (value === undefined) delete node[last];
  else node[last] = value;
}

const clone = (value: JsonObject): JsonObject => JSON.parse(JSON.stringify(value)) as JsonObject;

const withToString = (fields: Omit<FuzzCase, typeof fc.toStringMethod>): FuzzCase => ({
  ...fields,
  [fc.toStringMethod]: () => {
    const body = fields.body();
    return `${fields.category} ${fields.method} ${fields.path} (${fields.contentType ?? "no content-type"}${fields.chunked ? ", chunked" : ""}, ${body.length} bytes, expect ${fields.expect}): ${body.slice(0, 600).toString()}`;
  },
});

/** Each validating path and the resource it guards. */
const GUARDED_PATHS: ReadonlyArray<[string, string]> = [
  [VALIDATE_IDENTITY_PATH, "azureidentities"],
  [VALIDATE_ASSIGNED_IDENTITY_PATH, "azureassignedidentities"],
  [VALIDATE_EXCEPTION_PATH, "azurepodidentityexceptions"],
];
const endpoint = fc.constantFrom(...GUARDED_PATHS.map(([path]) => path), MUTATE_BINDING_PATH, MUTATE_SERVICE_ACCOUNT_PATH, VALIDATE_SERVICE_ACCOUNT_PATH);
// The API server calls `<url>?timeout=5s`; the query must not change the routing.
const endpointWithQuery = fc.tuple(endpoint, fc.boolean()).map(([path, query]) => (query ? `${path}?timeout=5s` : path));
const jsonContentType = fc.constantFrom("application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8");

const post = (
  category: Category,
  path: string,
  review: JsonObject | undefined,
  body: () => string | Buffer,
  expect: Expectation,
  contentType: string | undefined = "application/json",
  chunked = false,
): FuzzCase => withToString({ category, path, method: "POST", contentType, chunked, body, expect, ...(review ? { review } : {}) });

const valid = fc
  .tuple(endpointWithQuery, validReview, jsonContentType, fc.boolean())
  .map(([path, review, contentType, chunked]) => post("valid", path, review, () => JSON.stringify(review), "answer", contentType, chunked));

// ServiceAccount writes as the API server sends them, to the ServiceAccount webhooks: the generic
// reviews above reach a decision there too rarely. An UPDATE's old object is often the new one with
// the client ID as stored, or with it added or removed ("toggled"), so each of those rules is exercised.
const serviceAccount = fc
  .record(
    {
      apiVersion: fc.constant("v1"),
      kind: fc.constant("ServiceAccount"),
      metadata: fc.record(
        { name: text, labels: fc.tuple(lookupLabels, stringMap).map(([lookup, other]) => ({ ...other, ...lookup })), annotations },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ["metadata"] },
  )
  .map((object) => object as JsonObject);
const withClientId = (object: JsonObject, clientId: string | undefined): JsonObject => {
  const copy = clone(object);
  const metadata = (copy.metadata ?? {}) as JsonObject;
  const { [CLIENT_ID]: _dropped, ...rest } = (metadata.annotations ?? {}) as Record<string, string>;
  copy.metadata = { ...metadata, annotations: clientId === undefined ? rest : { ...rest, [CLIENT_ID]: clientId } };
  return copy;
};
const serviceAccountWrite = fc
  .record({
    object: serviceAccount,
    other: serviceAccount,
    old: fc.constantFrom("same", "other", "none", "toggled"),
    operation: fc.constantFrom("CREATE", "UPDATE", "UPDATE", "DELETE"),
    namespace: fc.constantFrom("team-a", "team-b", "team-c"),
    resource: fc.oneof({ weight: 9, arbitrary: fc.constant(SERVICE_ACCOUNTS) }, { weight: 1, arbitrary: resource }),
    userInfo,
    uid: fc.uuid(),
    apiVersion: fc.constantFrom(...API_VERSIONS),
    path: fc.constantFrom(MUTATE_SERVICE_ACCOUNT_PATH, VALIDATE_SERVICE_ACCOUNT_PATH),
  })
  .map(({ object, other, old, operation, namespace, resource: gvr, userInfo: user, uid, apiVersion, path }) => {
    const stored = (object.metadata as { annotations?: Record<string, string> }).annotations?.[CLIENT_ID];
    const oldObject =
      old === "same" ? object : old === "other" ? other : old === "toggled" ? withClientId(object, stored === undefined ? "app-client" : undefined) : null;
    const request: JsonObject = {
      uid,
      kind: { group: "", version: "v1", kind: "ServiceAccount" },
      resource: gvr,
      namespace,
      operation,
      userInfo: user,
      object: operation === "DELETE" ? null : object,
      oldObject: operation === "CREATE" ? null : oldObject,
    };
    const review: JsonObject = { apiVersion, kind: "AdmissionReview", request };
    return post("valid", path, review, () => JSON.stringify(review), "answer");
  });

const wrongType = fc
  .tuple(endpoint, validReview, fc.constantFrom(...TYPED_FIELDS))
  .chain(([path, review, [field, accepts]]) => {
    const bad = BAD_STRINGS[field];
    return fc.tuple(fc.constant(path), fc.constant(review), fc.constant(field), bad ? fc.oneof(wrongValue(accepts), bad) : wrongValue(accepts));
  })
  .map(([path, review, field, value]) => {
    const broken = clone(review);
    setAt(broken, field, value);
    return post("wrong-type", path, undefined, () => JSON.stringify(broken), 400);
  });

const missing = fc.tuple(endpoint, validReview, fc.constantFrom(...REQUIRED)).map(([path, review, field]) => {
  const broken = clone(review);
  setAt(broken, field, undefined);
  return post("missing-field", path, undefined, () => JSON.stringify(broken), 400);
});

const truncated = fc.tuple(endpoint, validReview, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })).map(([path, review, fraction]) => {
  const whole = JSON.stringify(review);
  return post("truncated", path, undefined, () => whole.slice(0, Math.floor(whole.length * fraction)), 400);
});

const randomJson = fc.tuple(endpoint, fc.jsonValue({ maxDepth: 4, stringUnit: "binary" })).map(([path, value]) => {
  const body = JSON.stringify(value);
  return post("random-json", path, undefined, () => body, 400);
});

const randomBytes = fc
  .tuple(endpoint, fc.uint8Array({ minLength: 1, maxLength: 2048 }))
  .map(([path, bytes]) => post("random-bytes", path, undefined, () => Buffer.from(bytes), 400));

const poisoned = fc
  .tuple(endpoint, validReview, fc.constantFrom('"__proto__":{"allowed":true}', '"constructor":{"prototype":{"allowed":true}}'))
  .map(([path, review, poison]) => {
    const body = JSON.stringify(review).replace('"request":{', `"request":{${poison},`);
    return post("poisoned", path, undefined, () => body, 400);
  });

// Fastify parses text/plain as a string, which the schema then rejects (400); the rest have no parser (415).
const NON_JSON_TYPES: [string, 400 | 415][] = [
  ["text/plain", 400],
  ["text/plain; charset=utf-8", 400],
  ["text/yaml", 415],
  ["application/yaml", 415],
  ["application/xml", 415],
  ["application/x-www-form-urlencoded", 415],
  ["multipart/form-data; boundary=x", 415],
  ["application/octet-stream", 415],
  ["application/vnd.kubernetes.protobuf", 415],
  ["application/json-patch+json", 415],
  ["application/jsonx", 415],
];
const contentType = fc
  .tuple(
    endpoint,
    validReview,
    fc.oneof(
      fc.constantFrom(...NON_JSON_TYPES).map(([type, status]) => ({ type, status })),
      fc.string({ maxLength: 40 }).map((type) => ({ type, status: undefined })),
    ),
  )
  // Random strings may still name JSON ("application/json ..."): then a well-formed answer is right too.
  .map(([path, review, { type, status }]) =>
    post("content-type", path, status ? undefined : review, () => JSON.stringify(review), status ?? "answer-or-4xx", type),
  );

const methodOrPath = fc
  .tuple(
    fc.oneof(
      endpoint,
      fc.constantFrom("/", "/mutate", "/validate", "/metrics", "/healthz", `${VALIDATE_IDENTITY_PATH}/x`, "/%2e%2e/etc/passwd"),
      fc.webPath().map((path) => path || "/"),
    ),
    fc.constantFrom("GET", "PUT", "PATCH", "DELETE", "OPTIONS", "POST"),
    validReview,
  )
  .filter(
    ([path, method]) =>
      !(
        method === "POST" &&
        [...GUARDED_PATHS.map(([guarded]) => guarded), MUTATE_BINDING_PATH, MUTATE_SERVICE_ACCOUNT_PATH, VALIDATE_SERVICE_ACCOUNT_PATH].includes(path)
      ),
  )
  .map(([path, method, review]) =>
    withToString({
      category: "method-or-path",
      path,
      method,
      contentType: "application/json",
      chunked: false,
      body: () => JSON.stringify(review),
      expect: "answer-or-4xx",
      review,
    }),
  );

/** A valid review padded (in an annotation) to `size` bytes: up to the limit it must be answered, above it a 413. */
const nearLimit = fc
  .tuple(endpoint, fc.integer({ min: -256 * 1024, max: 256 * 1024 }), fc.boolean(), fc.uuid(), fc.constantFrom(...API_VERSIONS))
  .map(([path, offset, chunked, uid, apiVersion]) => {
    const size = ADMISSION_BODY_LIMIT + offset;
    const body = () => {
      const review = {
        apiVersion,
        kind: "AdmissionReview",
        request: {
          uid,
          kind: { group: AAD, version: "v1", kind: "AzureIdentityBinding" },
          resource: { group: AAD, version: "v1", resource: "azureidentitybindings" },
          namespace: "team-a",
          operation: "CREATE",
          userInfo: { username: "jane" },
          object: {
            metadata: {
              name: "big",
              labels: { [TEST_LOOKUP_KEYS.name]: "app", [TEST_LOOKUP_KEYS.resourcegroup]: "rg-a", [TEST_LOOKUP_KEYS.subscription]: SUB_A },
              annotations: { pad: "" },
            },
            spec: {},
          },
        },
      };
      const empty = JSON.stringify(review).length;
      review.request.object.metadata.annotations.pad = "x".repeat(Math.max(0, size - empty));
      return JSON.stringify(review);
    };
    return withToString({
      category: "near-limit",
      path,
      method: "POST",
      contentType: "application/json",
      chunked,
      body,
      echo: { uid, apiVersion },
      expect: size <= ADMISSION_BODY_LIMIT ? "answer" : 413,
    });
  });

/** Objects nested up to 100,000 deep (far past any recursion's stack) inside spec, status and oldObject. */
const deep = fc
  .tuple(endpoint, fc.integer({ min: 1_000, max: 100_000 }), fc.constantFrom("spec", "status", "oldObject"), fc.uuid())
  .map(([path, depth, where, uid]) => {
    const nested = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    const object =
      where === "spec"
        ? `{"metadata":{"labels":{"${TEST_LOOKUP_KEYS.name}":"app","${TEST_LOOKUP_KEYS.resourcegroup}":"rg-a","${TEST_LOOKUP_KEYS.subscription}":"${SUB_A}"}},"spec":{"x":${nested}}}`
        : where === "status"
          ? `{"spec":{},"status":${nested}}`
          : "null";
    const old = where === "oldObject" ? nested : "null";
    const body = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"${uid}","kind":{"group":"${AAD}","version":"v1","kind":"AzureIdentityBinding"},"resource":{"group":"${AAD}","version":"v1","resource":"azureidentitybindings"},"namespace":"team-a","operation":"UPDATE","userInfo":{"username":"jane"},"object":${object},"oldObject":${old}}}`;
    return withToString({
      category: "deep",
      path,
      method: "POST",
      contentType: "application/json",
      chunked: false,
      body: () => body,
      echo: { uid, apiVersion: "admission.k8s.io/v1" },
      expect: "answer",
    });
  });

// Weights: about 1 in 200 requests is megabytes large (near the limit, or deeply nested).
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { arbitrary: valid, weight: 60 },
  { arbitrary: serviceAccountWrite, weight: 30 },
  { arbitrary: wrongType, weight: 50 },
  { arbitrary: missing, weight: 12 },
  { arbitrary: truncated, weight: 16 },
  { arbitrary: randomJson, weight: 12 },
  { arbitrary: randomBytes, weight: 8 },
  { arbitrary: poisoned, weight: 6 },
  { arbitrary: contentType, weight: 16 },
  { arbitrary: methodOrPath, weight: 10 },
  { arbitrary: nearLimit, weight: 1 },
  { arbitrary: deep, weight: 1 },
);

interface ResponseBody {
  apiVersion?: unknown;
  kind?: unknown;
  response?: { uid?: unknown; allowed?: unknown; patch?: unknown; patchType?: unknown; status?: { code?: unknown; message?: unknown }; warnings?: unknown };
  error?: unknown;
  message?: unknown;
}

/** Everything wrong with an answer to `fuzz`; empty when it is what the webhook promises. */
export function judge(fuzz: FuzzCase, answer: Answer): string[] {
  const problems: string[] = [];
  if (answer.status >= 500) return [`5xx: ${answer.status} ${answer.body.slice(0, 300)}`];
  let parsed: ResponseBody;
  try {
    parsed = JSON.parse(answer.body) as ResponseBody;
  } catch {
    return [`status ${answer.status} with a body that is not JSON: ${answer.body.slice(0, 300)}`];
  }
  if (answer.status === 200) {
    if (fuzz.expect !== "answer" && fuzz.expect !== "answer-or-4xx") problems.push(`expected ${fuzz.expect}, got 200`);
    problems.push(...judgeReviewAnswer(fuzz, parsed));
    return problems;
  }
  if (answer.status < 400) return [`unexpected status ${answer.status}`];
  if (fuzz.expect === "answer") problems.push(`expected a review answer, got ${answer.status}: ${answer.body.slice(0, 300)}`);
  if (typeof fuzz.expect === "number" && answer.status !== fuzz.expect)
    problems.push(`expected ${fuzz.expect}, got ${answer.status}: ${answer.body.slice(0, 300)}`);
  if (typeof parsed.message !== "string" || parsed.message.length === 0 || typeof parsed.error !== "string")
    problems.push(`a ${answer.status} without an error and a message: ${answer.body.slice(0, 300)}`);
  if (
    fuzz.expect === 400 &&
    answer.status === 400 &&
    fuzz.category !== "random-bytes" &&
    !/AdmissionReview|JSON|empty body|prototype|constructor/i.test(String(parsed.message))
  )
    problems.push(`a 400 whose message does not say what is wrong: ${String(parsed.message)}`);
  return problems;
}

function judgeReviewAnswer(fuzz: FuzzCase, parsed: ResponseBody): string[] {
  const request = fuzz.review?.request as JsonObject | undefined;
  const echo = fuzz.echo ?? (fuzz.review && request ? { uid: request.uid as string, apiVersion: fuzz.review.apiVersion as string } : undefined);
  if (!echo) return [`a 200 for a body that is not an AdmissionReview`];
  const problems: string[] = [];
  const response = parsed.response;
  if (parsed.apiVersion !== echo.apiVersion) problems.push(`apiVersion ${String(parsed.apiVersion)} instead of ${echo.apiVersion}`);
  if (parsed.kind !== "AdmissionReview") problems.push(`kind ${String(parsed.kind)}`);
  if (!response || response.uid !== echo.uid) return [...problems, `uid not echoed: ${JSON.stringify(response?.uid)} instead of ${JSON.stringify(echo.uid)}`];
  if (typeof response.allowed !== "boolean") problems.push(`allowed is ${JSON.stringify(response.allowed)}`);
  if (response.allowed === false && (typeof response.status?.message !== "string" || typeof response.status.code !== "number"))
    problems.push("a denial without status code and message");
  if (
    response.warnings !== undefined &&
    (!Array.isArray(response.warnings) || response.warnings.some((warning) => typeof warning !== "string" || !/^[\x20-\x7e]{1,256}$/.test(warning)))
  )
    problems.push(`warnings not short printable strings: ${JSON.stringify(response.warnings)}`);
  if (response.patch !== undefined) problems.push(...judgePatch(fuzz, request, response.patch, response.patchType));
  const guarded = GUARDED_PATHS.find(([path]) => fuzz.path.split("?")[0] === path);
  if (request && guarded && response.allowed === true && !mayWrite(guarded[1], request))
    problems.push(`allowed ${JSON.stringify(request.operation)} of ${guarded[1]} by ${JSON.stringify(request.userInfo)}`);
  if (request && fuzz.path.startsWith(MUTATE_BINDING_PATH) && response.allowed !== true)
    problems.push("the mutating webhook denied without --webhook.binding.strict");
  if (request && fuzz.path.startsWith(VALIDATE_SERVICE_ACCOUNT_PATH) && response.allowed === true && !mayNameClientId(request, identitiesIn, allIdentities))
    problems.push(
      `allowed a ServiceAccount client ID ${JSON.stringify((request.object as { metadata?: { annotations?: unknown } }).metadata?.annotations)} for ${JSON.stringify(request.userInfo)}`,
    );
  if (request && fuzz.path.startsWith(MUTATE_SERVICE_ACCOUNT_PATH) && response.allowed !== true)
    problems.push("the ServiceAccount mutating webhook denied without --workloadidentity.strict");
  return problems;
}

/**
 * The security property, written out again rather than imported: system:masters and (for deletes)
 * namespace cleanup get through everywhere; besides them only the operator writes AzureIdentities
 * and only MIC writes AzureAssignedIdentities. A request routed to the wrong path is not guarded there.
 */
function mayWrite(guardedResource: string, request: JsonObject): boolean {
  const resource = request.resource as { group: string; resource: string };
  if (resource.group !== AAD || resource.resource !== guardedResource) return true;
  const user = request.userInfo as { username?: string; groups?: string[] };
  if ((user.groups ?? []).includes("system:masters")) return true;
  if (guardedResource === "azureidentities" && user.username === TEST_OPERATOR_USER) return true;
  if (guardedResource === "azureassignedidentities" && user.username === TEST_MIC_USER) return true;
  return request.operation === "DELETE" && NAMESPACE_CLEANUP_USERS.has(user.username ?? "");
}

/** A patch must be base64 JSONPatch that applies to the object and only ever names an identity of the object's own namespace. */
function judgePatch(fuzz: FuzzCase, request: JsonObject | undefined, patch: unknown, patchType: unknown): string[] {
  if (patchType !== "JSONPatch" || typeof patch !== "string") return [`patch ${typeof patch} with patchType ${String(patchType)}`];
  const mutating = fuzz.path.startsWith(MUTATE_BINDING_PATH) || fuzz.path.startsWith(MUTATE_SERVICE_ACCOUNT_PATH);
  if (!mutating) return ["a validating webhook sent a patch"];
  let operations: jsonpatch.Operation[];
  try {
    operations = JSON.parse(Buffer.from(patch, "base64").toString()) as jsonpatch.Operation[];
  } catch {
    return ["patch is not base64 JSON"];
  }
  if (!Array.isArray(operations) || operations.length === 0) return [`patch is not a non-empty array: ${JSON.stringify(operations)}`];
  if (fuzz.path.startsWith(MUTATE_SERVICE_ACCOUNT_PATH)) return request ? judgeServiceAccountPatch(request, operations, identitiesIn) : [];
  if (operations.some((operation) => !operation.path.startsWith("/spec"))) return [`patch touches more than spec: ${JSON.stringify(operations)}`];
  if (!request) return [];
  const object = request.object as JsonObject | null | undefined;
  if (!object) return ["a patch for a request without an object"];
  let patched: JsonObject;
  try {
    patched = jsonpatch.applyPatch(clone(object), operations, true, false).newDocument;
  } catch (error) {
    return [`patch does not apply: ${(error as Error).message}`];
  }
  const name = (patched.spec as { azureIdentity?: unknown } | undefined)?.azureIdentity;
  const metadata = object.metadata as { namespace?: string; labels?: Record<string, string> } | undefined;
  const namespace = (request.namespace as string | undefined) ?? metadata?.namespace ?? "";
  // Written out here rather than calling the webhook's lookup, so the oracle does not share its bugs.
  const label = (labels: Record<string, string> | undefined, field: keyof typeof TEST_LOOKUP_KEYS) => labels?.[TEST_LOOKUP_KEYS[field]]?.toLowerCase();
  const expected = identitiesIn(namespace).find((candidate) =>
    (["name", "resourcegroup", "subscription"] as const).every(
      (field) => label(metadata?.labels, field) && label(metadata?.labels, field) === label(candidate.metadata?.labels, field),
    ),
  )?.metadata?.name;
  if (typeof name !== "string" || name !== expected)
    return [`patched spec.azureIdentity ${JSON.stringify(name)}; the identity of namespace "${namespace}" with those labels is ${JSON.stringify(expected)}`];
  return [];
}
