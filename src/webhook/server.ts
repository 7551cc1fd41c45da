import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import type { Server } from "node:https";
import type { DropArgument } from "node:net";
import type { Logger } from "pino";
import type { Pem } from "../../certs/pki.js";
import type { Metrics } from "../metrics/metrics.js";
import { admissionReviewSchema, type AdmissionReview, type Decision } from "./admission.js";
import { decideBinding, type BindingPolicy } from "./decide-binding.js";
import { decideGuarded, type GuardedKind, type GuardPolicy } from "./decide-guard.js";
import { mutateServiceAccount, validateServiceAccount, WORKLOAD_IDENTITY_OFF, type ServiceAccountPolicy } from "./decide-serviceaccount.js";
import { enforce, type Enforcement } from "./enforce.js";
import { declaredBody, InflightBudget } from "./inflight.js";
import { LargeBodyReclaimer } from "./reclaim.js";
import { KNOWN_RESOURCES, loggable, OPERATION_LABELS, operationLabel, OTHER_LABEL, RESULT_LABELS, resourceLabel, resultLabel } from "./labels.js";
import { admissionResponse } from "./respond.js";
import { ThrottledLog } from "./throttled-log.js";

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

const MiB = 1024 * 1024;
/**
 * Admission bodies held at once (--webhook.inflight.mib): one maximal review. Parsed, a review of
 * many small fields takes up to 11 times its size (Buffers, the string, V8 objects): one such review
 * on top of a replica's own ~120 MiB keeps it under 200 MiB, two did not (RELIABILITY.md, "Hostile
 * clients"). The API server's own reviews are a few KiB and keep a sixteenth of the budget to themselves.
 */
export const DEFAULT_INFLIGHT_BYTES = 4 * MiB;
/** Bodies up to this size may use the part of the in-flight budget kept from large ones. */
export const SMALL_BODY_BYTES = 64 * 1024;
/** Charged per request besides its body: request and reply objects, the parsed headers, the answer. */
export const REQUEST_OVERHEAD_BYTES = 8 * 1024;
/** Open connections (--webhook.max.connections), TLS handshakes included; each holds TLS state and buffers. */
export const DEFAULT_MAX_CONNECTIONS = 256;
/** After this many bytes of large bodies, V8 is asked for a major GC, at most every 250 ms (src/webhook/reclaim.ts). */
const RECLAIM_EVERY_BYTES = 1 * MiB;
const RECLAIM_INTERVAL_MS = 250;
/** Seconds the API server waits before it retries a 429 (client-go honours Retry-After in whole seconds). */
const RETRY_AFTER_SECONDS = 1;

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
  /** Bytes of admission bodies (declared) in flight at once; past them new requests get a 429 unread. */
  inflightBytes?: number;
  /** Open connections at once; past them new ones are dropped at accept. */
  maxConnections?: number;
  /** The clock of the throttled log lines (tests). */
  now?: () => number;
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
  limitInflight(app, options);
  const routes: RouteOptions = { ...options, otherLog: new ThrottledLog(options.log, options.now) };
  let draining = false;
  app.addHook("onSend", async (_request, reply) => {
    // header() returns the (thenable) reply for chaining; there is nothing to wait for.
    if (draining) void reply.header("connection", "close");
  });
  for (const { path, webhook, kind } of VALIDATING_WEBHOOKS) {
    addRoute(
      app,
      routes,
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
    routes,
    MUTATE_BINDING_PATH,
    "mutate-azureidentitybinding",
    (review) => decideBinding(review.request, options.bindingPolicy),
    (error) => ({
      allowed: true,
      result: "error",
      warnings: [`azure-msi-operator webhook could not fill spec.azureIdentity (${error.message}); the syncer will`],
    }),
  );
  addServiceAccountRoutes(app, routes);
  await app.listen({ host: options.host, port: options.port });
  limitConnections(app, options);
  return handle(app, options, () => (draining = true));
}

/** A decision that throws: the validating webhook denies (as the API server does when it cannot call it), the mutating one leaves the object as it is. */
function addServiceAccountRoutes(app: FastifyInstance, options: RouteOptions): void {
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

/**
 * Every admission series a webhook can make, at zero from the start (Prometheus' advice for label
 * values known in advance): no request, however it is made, adds a series to the scrape.
 */
function initSeries(metrics: Metrics, webhook: string): void {
  metrics.admissionDuration.zero({ webhook });
  for (const operation of OPERATION_LABELS) for (const result of RESULT_LABELS) metrics.admissionRequests.inc({ webhook, operation, result }, 0);
  for (const resource of [...KNOWN_RESOURCES, OTHER_LABEL]) metrics.admissionUnowned.inc({ webhook, resource }, 0);
}

/** What every route shares: the options and one throttled stream of "counted as other" lines, whichever webhook a request came to. */
type RouteOptions = WebhookServerOptions & { otherLog: ThrottledLog };

/** One webhook: parse (the schema) -> decide -> enforce (deny or warn) -> count, log a denial -> respond. */
function addRoute(
  app: FastifyInstance,
  options: RouteOptions,
  path: string,
  webhook: string,
  decide: (review: AdmissionReview) => Decision,
  onError: (error: Error) => Decision,
): void {
  initSeries(options.metrics, webhook);
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
      options.metrics.admissionWarned.inc({ webhook, operation: operationLabel(operation), result: resultLabel(decision.result) });
      options.log.warn(
        { webhook, operation: loggable(operation), user: loggable(userInfo.username ?? ""), namespace, name, reason: decision.message },
        "admission would be denied: allowed (warn mode)",
      );
      decision = enforced.decision;
    }
    options.metrics.admissionRequests.inc({ webhook, operation: operationLabel(review.request.operation), result: resultLabel(decision.result) });
    options.metrics.admissionDuration.observe({ webhook }, Number(process.hrtime.bigint() - started) / 1e9);
    if (decision.result === "unowned") {
      const { resource } = review.request.resource;
      const label = resourceLabel(resource);
      options.metrics.admissionUnowned.inc({ webhook, resource: label });
      if (label === OTHER_LABEL)
        options.otherLog.warn(
          { webhook, resource: loggable(resource), user: loggable(review.request.userInfo.username ?? "") },
          `admission request for a resource no webhook of ours is for, counted as resource="${OTHER_LABEL}"`,
        );
    }
    if (decision.unknownClientId) options.metrics.admissionUnknownClientIds.inc({ result: decision.allowed ? "allowed" : "denied" });
    if (decision.result === "denied") {
      const { operation, userInfo, namespace, name, dryRun } = review.request;
      options.log.info({ webhook, operation, user: userInfo.username, namespace, name, dryRun: dryRun ?? false }, "admission denied");
    }
    return admissionResponse(review.apiVersion, review.request.uid, decision);
  });
}

/**
 * Bounds the memory admission bodies take, whatever clients send: each request is charged its
 * declared Content-Length (a chunked one: the body limit) before a byte of the body is read; past
 * the budget it is answered 429 with Retry-After at once. A refused large body's connection is
 * closed rather than drained, so a client cannot keep it busy; a small one's is kept, as the API
 * server's pooled connections are (closing with its body unread could reset the answer away).
 * Bodies over the limit are left to Fastify, which answers 413 unread and closes.
 */
function limitInflight(app: FastifyInstance, options: WebhookServerOptions): void {
  const bodyLimit = options.bodyLimit ?? ADMISSION_BODY_LIMIT;
  const limitBytes = options.inflightBytes ?? DEFAULT_INFLIGHT_BYTES;
  const budget = new InflightBudget({
    limitBytes,
    reserveBytes: limitBytes / 16,
    smallBytes: SMALL_BODY_BYTES,
    overheadBytes: REQUEST_OVERHEAD_BYTES,
  });
  const refusedLog = new ThrottledLog(options.log, options.now);
  const reclaimer = new LargeBodyReclaimer(SMALL_BODY_BYTES, RECLAIM_EVERY_BYTES, RECLAIM_INTERVAL_MS);
  options.metrics.webhookRefused.inc({ reason: "inflight" }, 0);
  options.metrics.inflightBytes = () => budget.inUse;
  app.addHook("onRequest", (request, reply, done) => {
    const declared = declaredBody(request.headers, bodyLimit);
    if ("bytes" in declared && declared.bytes > bodyLimit) return done();
    const charge = budget.take(declared);
    if (charge === undefined) {
      options.metrics.webhookRefused.inc({ reason: "inflight" });
      const bytes = "bytes" in declared ? declared.bytes : undefined;
      refusedLog.warn(
        { inflightBytes: budget.inUse, limitBytes, declaredBytes: bytes ?? "chunked", client: request.socket.remoteAddress },
        "webhook busy: admission bodies in flight at the limit (--webhook.inflight.mib); answered 429 without reading the body",
      );
      void reply.code(429).header("retry-after", String(RETRY_AFTER_SECONDS));
      if (bytes === undefined || bytes > SMALL_BODY_BYTES) void reply.header("connection", "close");
      void reply.send({
        error: "Too Many Requests",
        message: `the webhook holds ${Math.round(limitBytes / MiB)} MiB of admission requests at once and is at it; retry after ${RETRY_AFTER_SECONDS} s`,
      });
      return;
    }
    reply.raw.once("close", () => {
      budget.release(charge);
      // Only a body received whole was parsed and left garbage; one cut off early must not buy a collection.
      if (request.raw.complete) reclaimer.done(charge - REQUEST_OVERHEAD_BYTES, Date.now());
    });
    done();
  });
}

/**
 * Caps open connections (each holds TLS state and buffers): past the cap Node drops new ones at
 * accept. Idle keep-alive connections are closed then, so that connections parked by one client
 * cannot keep the API server out; those mid-request are bounded by the 10 s timeouts.
 */
function limitConnections(app: FastifyInstance, options: WebhookServerOptions): void {
  const server = app.server as Server;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.maxConnections = maxConnections;
  const droppedLog = new ThrottledLog(options.log, options.now);
  options.metrics.webhookRefused.inc({ reason: "connections" }, 0);
  server.on("drop", (dropped?: DropArgument) => {
    options.metrics.webhookRefused.inc({ reason: "connections" });
    droppedLog.warn(
      { maxConnections, client: dropped?.remoteAddress },
      "webhook at its connection limit (--webhook.max.connections): dropped a new connection and closed the idle ones",
    );
    server.closeIdleConnections();
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
