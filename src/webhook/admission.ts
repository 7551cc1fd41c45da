// admission.k8s.io AdmissionReview, as much of it as the webhooks read, and the JSON schema the
// server checks every body against before any decision is made.

export type Operation = "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
export type AdmissionApiVersion = "admission.k8s.io/v1" | "admission.k8s.io/v1beta1";

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [field: string]: unknown };
  spec?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: GroupVersionResource;
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: Operation;
  userInfo: UserInfo;
  object?: KubeObject | null;
  oldObject?: KubeObject | null;
  dryRun?: boolean;
}

export interface AdmissionReview {
  apiVersion: AdmissionApiVersion;
  kind: "AdmissionReview";
  request: AdmissionRequest;
}

/** RFC 6902 operations, as much of them as the webhooks send. */
export type JsonPatchOperation =
  { op: "add" | "replace" | "test"; path: string; value: unknown } | { op: "remove"; path: string } | { op: "move" | "copy"; from: string; path: string };

/** What a webhook decided, before it is written as an AdmissionReview response. */
export interface Decision {
  allowed: boolean;
  /** HTTP-like status for denials (403) shown by kubectl. */
  code?: number;
  message?: string;
  patch?: JsonPatchOperation[];
  warnings?: string[];
  /** For metrics: allowed, denied, patched, unowned; warned: a refusal let through (--webhook.enforcement=warn). */
  result: "allowed" | "denied" | "patched" | "unowned" | "error" | "warned";
  /** For metrics: the write named a client ID the operator does not know. */
  unknownClientId?: true;
}

const stringMap = { type: "object", additionalProperties: { type: "string" } } as const;
const objectOrNull = { anyOf: [{ type: "object" }, { type: "null" }] } as const;

/** Checked by the server (Ajv through Fastify) with type coercion off, so a wrong type is a 400, not a guess. */
export const admissionReviewSchema = {
  type: "object",
  required: ["apiVersion", "kind", "request"],
  properties: {
    apiVersion: { type: "string", enum: ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] },
    kind: { type: "string", const: "AdmissionReview" },
    request: {
      type: "object",
      required: ["uid", "kind", "resource", "operation", "userInfo"],
      properties: {
        uid: { type: "string", minLength: 1, maxLength: 256 },
        kind: {
          type: "object",
          required: ["group", "version", "kind"],
          properties: { group: { type: "string" }, version: { type: "string" }, kind: { type: "string" } },
        },
        resource: {
          type: "object",
          required: ["group", "version", "resource"],
          properties: { group: { type: "string" }, version: { type: "string" }, resource: { type: "string" } },
        },
        subResource: { type: "string" },
        name: { type: "string" },
        namespace: { type: "string" },
        operation: { type: "string", enum: ["CREATE", "UPDATE", "DELETE", "CONNECT"] },
        userInfo: {
          type: "object",
          properties: {
            username: { type: "string" },
            uid: { type: "string" },
            groups: { type: "array", items: { type: "string" } },
            extra: { type: "object", additionalProperties: { type: "array", items: { type: "string" } } },
          },
        },
        object: {
          anyOf: [
            {
              type: "object",
              properties: {
                metadata: {
                  type: "object",
                  properties: { labels: stringMap, annotations: stringMap, name: { type: "string" }, namespace: { type: "string" } },
                },
                spec: { type: "object" },
              },
            },
            { type: "null" },
          ],
        },
        oldObject: objectOrNull,
        dryRun: { type: "boolean" },
      },
    },
  },
} as const;
