import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import type { Server } from "node:https";
import type { Logger } from "pino";
import type { Pem } from "../../certs/pki.js";
import type { Metrics } from "../metrics/metrics.js";
import { admissionReviewSchema, type AdmissionReview, type Decision } from "./admission.js";
import { decideBinding, type BindingPolicy } from "./decide-binding.js";
import { decideGuarded, type GuardedKind, type GuardPolicy } from "./decide-guard.js";
import { mutateServiceAccount, validateServiceAccount, WORKLOAD_IDENTITY_OFF, type ServiceAccountPolicy } from "./decide-serviceaccount.js";
import { enforce, type Enforcement } from "./enforce.js";
import { admissionResponse } from "./respond.js";

export const VALIDATE_IDENTITY_PATH = "/validate/azureidentity";
export const VALIDATE_ASSIGNED_IDENTITY_PATH = "/validate/azureassignedidentity";
export const VALIDATE_EXCEPTION_PATH = "/validate/azurepodidentityexception";
export const MUTATE_BINDING_PATH = "/mutate/azureidentitybinding";
/** Workload identity mode (manifests/overlays/workload-identity); served always, answering "allowed" while the mode is off. */
export const MUTATE_SERVICE_ACCOUNT_PATH = "/mutate/serviceaccount";
export const VALIDATE_SERVICE_ACCOUNT_PATH = "/validate/serviceaccount";

/** The validating webhooks: one path (and metrics label) per guarded kind. */
export const VALIDATING_WEBHOOKS: ReadonlyArray<{ path: string; webhook: string; kind: GuardedKind }> = [
  { path: VALIDATE_IDENTITY_PATH, webhook: "validate-azureidentity", kind: "AzureIdentity" },
  { path: VALIDATE_ASSIGNED_IDENTITY_PATH, webhook: "validate-azureassignedidentity", kind: "AzureAssignedIdentity" },
  { path: VALIDATE_EXCEPTION_PATH, webhook: "validate-azurepodidentityexception", kind: "AzurePodIdentityException" },
];
export const WEBHOOK_PATHS: readonly string[] = [
  ...VALIDATING_WEBHOOKS.map((entry) => entry.path),
  MUTATE_BINDING_PATH,
  MUTATE_SERVICE_ACCOUNT_PATH,
  VALIDATE_SERVICE_ACCOUNT_PATH,
];

/** Room for an AdmissionReview carrying two objects of etcd's 1.5 MiB maximum, plus the envelope. */
export const ADMISSION_BODY_LIMIT = 3.5 * 1024 * 1024;

export interface WebhookServerOptions {
  host: string;
  port: number;
  tls: Pem;
  guardPolicy: GuardPolicy;
  bindingPolicy: BindingPolicy;
  /** The ServiceAccount webhooks; absent: the workload identity mode is off. */
  serviceAccountPolicy?: ServiceAccountPolicy;
  metrics: Metrics;
  log: Logger;
  bodyLimit?: number;
  /** --webhook.enforcement (default deny). */
  enforcement?: Enforcement;
}

export interface WebhookServer {
  readonly port: number;
  /** Swaps the serving certificate for new connections without a restart. */
  updateTls(pem: Pem): void;
  /**
   * Shutdown has begun: keep answering, but ask every client to close its connection after the
   * answer, so the API server's pooled connections move to another replica before this one stops.
   */
  drain(): void;
  close(): Promise<void>;
}

/**
 * The admission HTTPS server: parse (JSON schema, no coercion) -> decide (pure, from the in-memory
 * cache) -> respond. Bad bodies get a 4xx with a message that says what is wrong; a bug in a
 * decision becomes a well-formed answer (deny for validation, allow with a warning for mutation),
 * never a 500.
 */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const app = createServer(options);
  let draining = false;
  app.addHook("onSend", async (_request, reply) => {
    // header() returns the (thenable) reply for chaining; there is nothing to wait for.
    if (draining) void reply.header("connection", "close");
  });
  for (const { path, webhook, kind } of VALIDATING_WEBHOOKS) {
    addRoute(
      app,
      options,
      path,
      webhook,
      (review) => decideGuarded(kind, review.request, options.guardPolicy),
      (error) => ({
        allowed: false,
        code: 500,
        result: "error",
        message: `azure-msi-operator webhook could not decide (${error.message}); denied to stay safe`,
      }),
    );
  }
  addRoute(
    app,
    options,
    MUTATE_BINDING_PATH,
    "mutate-azureidentitybinding",
    (review) => decideBinding(review.request, options.bindingPolicy),
    (error) => ({
      allowed: true,
      result: "error",
      warnings: [`azure-msi-operator webhook could not fill spec.azureIdentity (${error.message}); the syncer will`],
    }),
  );
  addServiceAccountRoutes(app, options);
  await app.listen({ host: options.host, port: options.port });
  return handle(app, options, () => (draining = true));
}

/** A decision that throws: the validating webhook denies (as the API server does when it cannot call it), the mutating one leaves the object as it is. */
function addServiceAccountRoutes(app: FastifyInstance, options: WebhookServerOptions): void {
  const policy = options.serviceAccountPolicy ?? WORKLOAD_IDENTITY_OFF;
  addRoute(
    app,
    options,
    MUTATE_SERVICE_ACCOUNT_PATH,
    "mutate-serviceaccount",
    (review) => mutateServiceAccount(review.request, policy),
    (error) => ({
      allowed: true,
      result: "error",
      warnings: [`azure-msi-operator webhook could not fill azure.workload.identity/client-id (${error.message}); left as it is`],
    }),
  );
  addRoute(
    app,
    options,
    VALIDATE_SERVICE_ACCOUNT_PATH,
    "validate-serviceaccount",
    (review) => validateServiceAccount(review.request, policy, options.guardPolicy),
    (error) => ({
      allowed: false,
      code: 500,
      result: "error",
      message: `azure-msi-operator webhook could not decide (${error.message}); denied to stay safe`,
    }),
  );
}

function createServer(options: WebhookServerOptions): FastifyInstance {
  const app = Fastify({
    // Slow clients are cut off after 10 s in every phase: TLS handshake (Node's default is 120 s),
    // headers, and the whole request. headersTimeout must not exceed requestTimeout: Node swaps them
    // if it does, which let a body trickling in one byte at a time hold a connection for 60-90 s.
    // Node checks for expired requests every connectionsCheckingInterval (default 30 s).
    https: {
      key: options.tls.key,
      cert: options.tls.cert,
      minVersion: "TLSv1.2",
      handshakeTimeout: 10_000,
      headersTimeout: 10_000,
      connectionsCheckingInterval: 1_000,
    },
    bodyLimit: options.bodyLimit ?? ADMISSION_BODY_LIMIT,
    connectionTimeout: 10_000,
    requestTimeout: 10_000,
    keepAliveTimeout: 75_000,
    logger: false,
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const { status, message } = describeBadRequest(error);
    if (status >= 500) options.log.error({ err: error.message }, "webhook request failed");
    return reply.code(status).send({ error: status === 413 ? "Payload Too Large" : status === 415 ? "Unsupported Media Type" : "Bad Request", message });
  });
  app.setNotFoundHandler((request, reply) => {
    return reply
      .code(404)
      .send({ error: "Not Found", message: `no webhook at ${request.method} ${request.url}; use POST on one of ${WEBHOOK_PATHS.join(", ")}` });
  });
  return app;
}

/** One webhook: parse (the schema) -> decide -> enforce (deny or warn) -> count, log a denial -> respond. */
function addRoute(
  app: FastifyInstance,
  options: WebhookServerOptions,
  path: string,
  webhook: string,
  decide: (review: AdmissionReview) => Decision,
  onError: (error: Error) => Decision,
): void {
  app.post<{ Body: AdmissionReview }>(path, { schema: { body: admissionReviewSchema } }, async (request) => {
    const started = process.hrtime.bigint();
    const review = request.body;
    let decision: Decision;
    try {
      decision = decide(review);
    } catch (error) {
      options.log.error({ webhook, uid: review.request.uid, err: (error as Error).message }, "admission decision failed");
      decision = onError(error as Error);
    }
    const enforced = enforce(decision, options.enforcement ?? "deny");
    if (enforced.warned) {
      const { operation, userInfo, namespace, name } = review.request;
      options.metrics.admissionWarned.inc({ webhook, operation, result: decision.result });
      options.log.warn(
        { webhook, operation, user: userInfo.username, namespace, name, reason: decision.message },
        "admission would be denied: allowed (warn mode)",
      );
      decision = enforced.decision;
    }
    const labels = { webhook, operation: review.request.operation, result: decision.result };
    options.metrics.admissionRequests.inc(labels);
    options.metrics.admissionDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    if (decision.result === "unowned") options.metrics.admissionUnowned.inc({ webhook, resource: review.request.resource.resource });
    if (decision.unknownClientId) options.metrics.admissionUnknownClientIds.inc({ result: decision.allowed ? "allowed" : "denied" });
    if (decision.result === "denied") {
      const { operation, userInfo, namespace, name, dryRun } = review.request;
      options.log.info({ webhook, operation, user: userInfo.username, namespace, name, dryRun: dryRun ?? false }, "admission denied");
    }
    return admissionResponse(review.apiVersion, review.request.uid, decision);
  });
}

function handle(app: FastifyInstance, options: WebhookServerOptions, drain: () => void): WebhookServer {
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    port,
    updateTls(pem: Pem) {
      (app.server as Server).setSecureContext({ key: pem.key, cert: pem.cert, minVersion: "TLSv1.2" });
    },
    drain,
    close: () => app.close(),
  };
}

function describeBadRequest(error: FastifyError): { status: number; message: string } {
  if (error.validation) {
    const first = error.validation[0];
    const where = first?.instancePath ? first.instancePath.replace(/^\//, "").replaceAll("/", ".") : "body";
    return { status: 400, message: `not a valid AdmissionReview: ${where} ${first?.message ?? "is invalid"}` };
  }
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return { status: 415, message: "Content-Type must be application/json (an AdmissionReview)" };
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return { status: 413, message: `the AdmissionReview is larger than the ${Math.round(ADMISSION_BODY_LIMIT / 1024)} KiB this webhook accepts` };
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return { status: 400, message: "empty body: expected an AdmissionReview" };
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return { status: 400, message: `body is not valid JSON: ${error.message}` };
  }
  if (error instanceof SyntaxError) return { status: 400, message: `body is not valid JSON: ${error.message}` };
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  return { status, message: error.message };
}
