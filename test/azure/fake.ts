// A local HTTPS fake of Azure Resource Manager (subscriptions, user-assigned identities and their
// federated identity credentials) and of the Entra token endpoint (client secrets and client
// assertions), for the real SDK clients to talk to. Processes trust it through
// NODE_EXTRA_CA_CERTS (test/run.ts), so nothing in the SDK is patched or mocked.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCert, type Pem } from "../../certs/pki.js";
import { ensureTestCa } from "../support/test-ca.js";
import { armError, FakeArm, injectedArmError, subscriptionOfPath, type ArmAnswer } from "./arm.js";
import type { IssuerKeySource } from "./assertion.js";
import { aadError, FakeEntra, type FakeApp } from "./entra.js";
import { FaultTable, type FakeFault, type FakeRequest, type FaultRule, type InjectedFault, type RequestKind } from "./faults.js";
import { FederatedCredentialRoutes, isFederatedCredentialPath } from "./fic.js";
import { FakeModel, type FakeFederatedCredential, type IdentityKey } from "./model.js";

export { JWT_BEARER, type IssuerKeySource } from "./assertion.js";
export { MAX_FEDERATED_CREDENTIALS } from "./fic.js";
export { faults, type FakeFault, type FakeRequest, type FaultRule, type InjectedFault } from "./faults.js";
export type { FakeFederatedCredential, FakeIdentity, FakeSubscription, NewIdentity } from "./model.js";

export interface FakeAzureOptions {
  /** Items per list page (ARM's is 100). */
  pageSize?: number;
  /** The region in x-ms-routing-request-id. */
  region?: string;
  tokenLifetimeSeconds?: number;
  /** How long one federated identity credential PUT or DELETE takes (default 50 ms); see ficWriteMs. */
  ficWriteMs?: number;
}

/** One request the fake received, for assertions. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Path and query. */
  url: string;
  kind: RequestKind;
  /** 0: no answer (socket reset, or the client gave up first). */
  status: number;
  /** Arrival time (ms since the epoch). */
  at: number;
  fault?: FakeFault["type"];
  /** Token requests: the client ID and scope asked for, and how the client proved who it is. */
  clientId?: string;
  scope?: string;
  clientAuth?: "secret" | "assertion";
  /** The client's User-Agent: the operator names its instance there, so a test can tell replicas apart. */
  userAgent?: string;
  /** ARM requests: the application whose bearer token authorised it (the `caller` of Azure's activity log, which a client cannot forge). */
  caller?: string;
}

const KIND_PATTERNS: readonly [RequestKind, RegExp][] = [
  ["token", /^\/[^/]+\/oauth2\/v2\.0\/token\/?$/i],
  ["openid", /^\/[^/]+(?:\/v2\.0)?\/\.well-known\/openid-configuration\/?$/i],
  ["arm", /^\/subscriptions(?:\/|$)/i],
];

let servingCert: Promise<Pem> | undefined;

/** One serving certificate per test process, from the cached test CA (RSA key generation is slow). */
function fakeServingCert(): Promise<Pem> {
  servingCert ??= ensureTestCa().then((ca) =>
    issueCert(ca, { commonName: "azure-fake", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], usage: "server", validityMs: 86_400_000 }),
  );
  return servingCert;
}

export class FakeAzure {
  readonly model: FakeModel;
  readonly entra: FakeEntra;
  /** The service principal of credentialEnv(). */
  readonly app: FakeApp;
  readonly requests: RecordedRequest[] = [];
  pageSize: number;
  readonly region: string;
  /**
   * How long one FIC write (PUT or DELETE) takes. Azure refuses a FIC write on an identity while
   * another is under way there (409), so this is the window in which two writes conflict.
   */
  ficWriteMs: number;

  private readonly arm: FakeArm;
  private readonly federatedCredentialRoutes: FederatedCredentialRoutes;
  private readonly faults = new FaultTable();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly readQuota = new Map<string, number>();
  private inFlight = 0;
  /** The most requests the fake was answering at the same time. */
  peakInFlight = 0;
  private port = 0;
  private envDir: string | undefined;

  private constructor(
    private readonly server: Server,
    options: FakeAzureOptions,
  ) {
    this.pageSize = options.pageSize ?? 100;
    this.region = (options.region ?? "WESTEUROPE").toUpperCase();
    this.ficWriteMs = options.ficWriteMs ?? 50;
    this.entra = new FakeEntra(
      () => this.url,
      () => [this.audience],
      (clientId) => {
        const identity = this.model.identityByClientId(clientId);
        if (!identity) return undefined;
        const { tenantId, principalId: objectId } = identity;
        return { tenantId, clientId: identity.clientId, objectId, credentials: this.model.federatedCredentials(identity) };
      },
    );
    if (options.tokenLifetimeSeconds !== undefined) this.entra.tokenLifetimeSeconds = options.tokenLifetimeSeconds;
    this.app = this.entra.addApp();
    this.model = new FakeModel(this.app.tenantId);
    this.arm = new FakeArm(
      this.model,
      () => this.url,
      () => this.pageSize,
    );
    this.federatedCredentialRoutes = new FederatedCredentialRoutes({
      model: this.model,
      baseUrl: () => this.url,
      pageSize: () => this.pageSize,
      writeMs: () => this.ficWriteMs,
      sleep: (ms) => this.sleep(ms),
    });
  }

  static async start(options: FakeAzureOptions = {}): Promise<FakeAzure> {
    const pem = await fakeServingCert();
    const server = createServer({ key: pem.key, cert: pem.cert, minVersion: "TLSv1.2" });
    const fake = new FakeAzure(server, options);
    server.on("connection", (socket: Socket) => {
      fake.sockets.add(socket);
      socket.on("close", () => fake.sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => void fake.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("fake Azure: no TCP address");
    fake.port = address.port;
    return fake;
  }

  /** Both the Resource Manager endpoint and the authority host. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The audience Resource Manager tokens are for (the scope is `<audience>/.default`). */
  get audience(): string {
    return this.url;
  }

  get tenantId(): string {
    return this.app.tenantId;
  }

  // Model shortcuts; see FakeModel for the rest.
  addSubscription: FakeModel["addSubscription"] = (fields) => this.model.addSubscription(fields);
  removeSubscription: FakeModel["removeSubscription"] = (subscriptionId) => this.model.removeSubscription(subscriptionId);
  addIdentity: FakeModel["addIdentity"] = (fields) => this.model.addIdentity(fields);
  addIdentities: FakeModel["addIdentities"] = (subscriptionId, count, fields, options) => this.model.addIdentities(subscriptionId, count, fields, options);
  updateIdentity: FakeModel["updateIdentity"] = (id, changes) => this.model.updateIdentity(id, changes);
  removeIdentity: FakeModel["removeIdentity"] = (id) => this.model.removeIdentity(id);

  /** Seeds a FIC as stored, without ARM's rules (tests of those go through the ARM routes). */
  addFederatedCredential(identity: IdentityKey, fields: Omit<FakeFederatedCredential, "audiences"> & { audiences?: string[] }): FakeFederatedCredential {
    return this.model.putFederatedCredential(identity, { audiences: ["api://AzureADTokenExchange"], ...fields });
  }

  federatedCredentials(identity: IdentityKey): FakeFederatedCredential[] {
    return this.model.federatedCredentials(identity);
  }

  /**
   * Lets client assertions from this OIDC issuer be verified with its keys: a JWKS document, a URL
   * serving one (e.g. kube-apiserver's /openid/v1/jwks), or a function returning one.
   */
  trustIssuer(issuer: string, keys: IssuerKeySource): void {
    this.entra.issuers.trust(issuer, keys);
  }

  /** Makes the next matching request(s) fail; see FaultRule for the defaults. */
  inject(rule: FaultRule): InjectedFault {
    return this.faults.add(rule);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Recorded requests whose path + query matches, optionally of one kind. */
  requestsTo(pattern: RegExp, kind?: RequestKind): RecordedRequest[] {
    return this.requests.filter((request) => pattern.test(request.url) && (kind === undefined || request.kind === kind));
  }

  armRequests(): RecordedRequest[] {
    return this.requests.filter((request) => request.kind === "arm");
  }

  tokenRequests(): RecordedRequest[] {
    return this.requests.filter((request) => request.kind === "token");
  }

  /** Recorded requests to FIC routes, optionally of some methods only (e.g. ["PUT", "DELETE"]: the writes). */
  federatedCredentialRequests(methods?: readonly string[]): RecordedRequest[] {
    return this.armRequests().filter((request) => isFederatedCredentialPath(request.path) && (methods === undefined || methods.includes(request.method)));
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  /** go-autorest's environment JSON (as `az cloud` and Azure Stack write it), pointing at the fake. */
  environmentJson(): Record<string, unknown> {
    const base = `${this.url}/`;
    return {
      name: "AzureFakeCloud",
      managementPortalURL: base,
      publishSettingsURL: `${base}publishsettings/index`,
      serviceManagementEndpoint: base,
      resourceManagerEndpoint: base,
      activeDirectoryEndpoint: base,
      galleryEndpoint: base,
      keyVaultEndpoint: base,
      graphEndpoint: base,
      serviceBusEndpoint: base,
      batchManagementEndpoint: base,
      storageEndpointSuffix: "fake.local",
      cosmosDBDNSSuffix: "fake.local",
      trafficManagerDNSSuffix: "fake.local",
      keyVaultDNSSuffix: "vault.fake.local",
      serviceBusEndpointSuffix: "servicebus.fake.local",
      serviceManagementVMDNSSuffix: "cloudapp.fake.local",
      resourceManagerVMDNSSuffix: "cloudapp.fake.local",
      containerRegistryDNSSuffix: "azurecr.fake.local",
      tokenAudience: `${this.audience}/`,
      resourceIdentifiers: { graph: base, keyVault: base, datalake: base, batch: base, operationalInsights: base, storage: base },
    };
  }

  /** (Re)writes the environment file and returns its path (one per fake, removed by close()). */
  environmentFile(): string {
    this.envDir ??= mkdtempSync(join(tmpdir(), "azure-fake-"));
    const path = join(this.envDir, "environment.json");
    writeFileSync(path, JSON.stringify(this.environmentJson(), null, 2));
    return path;
  }

  /**
   * What a process under test needs in its environment to use the fake through DefaultAzureCredential.
   * AZURE_AUTHORITY_HOST is left out on purpose: the authority must come from the environment file.
   */
  credentialEnv(app: FakeApp = this.app): Record<string, string> {
    return {
      AZURE_TENANT_ID: app.tenantId,
      AZURE_CLIENT_ID: app.clientId,
      AZURE_CLIENT_SECRET: app.clientSecret,
      AZURE_ENVIRONMENT_FILEPATH: this.environmentFile(),
    };
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    if (this.envDir) rmSync(this.envDir, { recursive: true, force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const path = url.split("?", 1)[0] ?? "/";
    const kind = KIND_PATTERNS.find(([, pattern]) => pattern.test(path))?.[0] ?? "unknown";
    const record: RecordedRequest = { method: req.method ?? "GET", path, url, kind, status: 0, at: Date.now() };
    if (req.headers["user-agent"]) record.userAgent = req.headers["user-agent"];
    this.requests.push(record);
    this.peakInFlight = Math.max(this.peakInFlight, ++this.inFlight);
    res.once("close", () => this.inFlight--);
    const body = await readBody(req);
    const request: FakeRequest = { method: record.method, path, url, kind, headers: req.headers };
    const form = kind === "token" ? new URLSearchParams(body) : undefined;
    if (form) {
      record.clientId = form.get("client_id") ?? "";
      record.scope = form.get("scope") ?? "";
      if (form.has("client_assertion")) record.clientAuth = "assertion";
      else if (form.has("client_secret")) record.clientAuth = "secret";
    }

    const fault = this.faults.next(request);
    if (fault) record.fault = fault.type;
    if (fault?.type === "reset") {
      req.socket.destroy();
      return;
    }
    // Left unanswered; close() destroys the socket.
    if (fault?.type === "hang") return;
    if (fault?.type === "delay") {
      await this.sleep(fault.ms);
      if (res.destroyed || req.socket.destroyed) return;
    }
    if (kind === "arm") {
      const check = this.entra.check(typeof req.headers.authorization === "string" ? req.headers.authorization : undefined);
      if (check.ok) record.caller = check.app.clientId;
    }
    const answer = fault && fault.type !== "delay" ? this.faultAnswer(fault, request) : await this.normalAnswer(request, form, body);
    this.send(res, record, answer);
  }

  /** A timer that close() cancels (the promise then never settles: its request is gone anyway). */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }

  private async normalAnswer(request: FakeRequest, form: URLSearchParams | undefined, body: string): Promise<ArmAnswer> {
    const tenant = request.path.split("/")[1] ?? "";
    switch (request.kind) {
      case "openid":
        return this.entra.openIdConfiguration(tenant);
      case "token":
        return request.method === "POST"
          ? this.entra.token(tenant, form ?? new URLSearchParams())
          : { status: 405, body: aadError("invalid_request", 900561, "The endpoint only accepts POST requests.", this.url) };
      case "arm": {
        const check = this.entra.check(typeof request.headers.authorization === "string" ? request.headers.authorization : undefined);
        if (!check.ok) {
          return {
            status: 401,
            body: { error: { code: check.code, message: check.message } },
            headers: {
              "www-authenticate": `Bearer authorization_uri="${this.url}/${this.tenantId}", error="invalid_token", error_description="${check.message.replace(/"/g, "'")}"`,
            },
          };
        }
        return isFederatedCredentialPath(request.path) ? this.federatedCredentialRoutes.answer(request, body) : this.arm.answer(request);
      }
      default:
        return { status: 404, body: { error: { code: "NotFound", message: `The fake has no route for ${request.method} ${request.path}.` } } };
    }
  }

  private faultAnswer(fault: Exclude<FakeFault, { type: "reset" | "delay" | "hang" }>, request: FakeRequest): ArmAnswer {
    const entra = request.kind === "token" || request.kind === "openid";
    switch (fault.type) {
      case "malformed":
        return { status: 200, body: fault.body ?? '{"value":[{"id":"/subscriptions/', quota: entra ? undefined : this.quotaOf(request) };
      case "token-error":
        return {
          status: fault.status ?? 400,
          body: aadError(fault.error ?? "invalid_client", fault.aadsts ?? 7000215, fault.description ?? "Injected token error.", this.url),
        };
      case "status": {
        const retryAfter: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { "retry-after": String(fault.retryAfterSeconds) };
        if (entra)
          return {
            status: fault.status,
            body: aadError("temporarily_unavailable", 90033, "A transient error has occurred. Please try again.", this.url),
            headers: retryAfter,
          };
        const injected = injectedArmError(fault.status, subscriptionOfPath(request.path));
        const answer = fault.code === undefined ? injected : armError(fault.status, fault.code, `Injected ${fault.code} from the fake.`);
        return { ...answer, headers: { ...answer.headers, ...retryAfter }, quota: this.quotaOf(request) };
      }
    }
  }

  private quotaOf(request: FakeRequest): ArmAnswer["quota"] {
    const subscriptionId = subscriptionOfPath(request.path);
    return subscriptionId ? { scope: "subscription", subscriptionId } : { scope: "tenant" };
  }

  private send(res: ServerResponse, record: RecordedRequest, answer: ArmAnswer): void {
    if (res.destroyed) return;
    const text = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
    const headers: Record<string, string> = {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-cache",
      pragma: "no-cache",
      expires: "-1",
    };
    if (record.kind === "arm") Object.assign(headers, this.armHeaders(answer));
    else headers["x-ms-request-id"] = randomUUID();
    Object.assign(headers, answer.headers);
    record.status = answer.status;
    res.writeHead(answer.status, { ...headers, "content-length": String(Buffer.byteLength(text)) });
    res.end(text);
  }

  /** What ARM adds to every answer: request IDs, the routing region and the remaining read quota. */
  private armHeaders(answer: ArmAnswer): Record<string, string> {
    const correlation = randomUUID();
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z");
    const headers: Record<string, string> = {
      "x-ms-request-id": correlation,
      "x-ms-correlation-request-id": correlation,
      "x-ms-routing-request-id": `${this.region}:${stamp}:${correlation}`,
      "strict-transport-security": "max-age=31536000; includeSubDomains",
      "x-content-type-options": "nosniff",
    };
    const quota = answer.quota ?? (answer.status === 401 ? undefined : { scope: "tenant" as const });
    if (quota) {
      const operation = (quota.scope === "subscription" && quota.operation) || "reads";
      const name = quota.scope === "tenant" ? "x-ms-ratelimit-remaining-tenant-reads" : `x-ms-ratelimit-remaining-subscription-${operation}`;
      const bucket = quota.scope === "tenant" ? "tenant" : `${quota.subscriptionId.toLowerCase()}/${operation}`;
      const remaining = answer.status === 429 ? 0 : Math.max(1, (this.readQuota.get(bucket) ?? 12_000) - 1);
      if (answer.status !== 429) this.readQuota.set(bucket, remaining);
      headers[name] = String(remaining);
    }
    return headers;
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
