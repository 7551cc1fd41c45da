import { randomBytes, randomUUID } from "node:crypto";
import { checkAssertion, JWT_BEARER, TrustedIssuers, type FederatedPrincipal } from "./assertion.js";

/** A service principal the fake's Entra tenant knows (client-secret flow). */
export interface FakeApp {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** The object ID that ends up as `oid` in its tokens. */
  objectId: string;
}

interface IssuedToken {
  app: FakeApp;
  audience: string;
  expiresAt: number;
}

export type TokenCheck =
  | { ok: true; app: FakeApp; audience: string }
  | { ok: false; code: "AuthenticationFailed" | "InvalidAuthenticationToken" | "ExpiredAuthenticationToken"; message: string };

/** The JSON body Entra answers token errors with (AADSTS code, trace and correlation IDs). */
export function aadError(error: string, aadsts: number, description: string, baseUrl: string): Record<string, unknown> {
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const timestamp = new Date()
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
  return {
    error,
    error_description: `AADSTS${aadsts}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [aadsts],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `${baseUrl}/error?code=${aadsts}`,
  };
}

export type TokenAnswer = { status: 200; body: Record<string, unknown>; app: FakeApp } | { status: number; body: Record<string, unknown> };

/**
 * The Entra side of the fake: tenant discovery documents and the v2.0 token endpoint for the
 * client-credentials grant (with a client secret, or a client assertion checked against federated
 * identity credentials), issuing JWT-shaped bearer tokens that ARM routes then check.
 */
export class FakeEntra {
  private readonly apps = new Map<string, FakeApp>();
  private readonly tokens = new Map<string, IssuedToken>();
  /** The OIDC issuers whose tokens client assertions may be (trust() registers their keys). */
  readonly issuers = new TrustedIssuers();
  tokenLifetimeSeconds = 3599;

  constructor(
    private readonly baseUrl: () => string,
    /** Audiences a token may be asked for (scope `<audience>/.default`). */
    private readonly audiences: () => readonly string[],
    /** The managed identity with this client ID and its FICs, if any (the model lives in FakeAzure). */
    private readonly federatedPrincipal: (clientId: string) => FederatedPrincipal | undefined = () => undefined,
  ) {}

  addApp(fields: Partial<FakeApp> = {}): FakeApp {
    const app: FakeApp = {
      tenantId: randomUUID(),
      clientId: randomUUID(),
      clientSecret: randomBytes(24).toString("base64url"),
      objectId: randomUUID(),
      ...fields,
    };
    this.apps.set(app.clientId.toLowerCase(), app);
    return app;
  }

  knowsTenant(tenant: string): boolean {
    return [...this.apps.values()].some((app) => app.tenantId.toLowerCase() === tenant.toLowerCase());
  }

  /** GET /{tenant}/v2.0/.well-known/openid-configuration, in the shape login.microsoftonline.com serves. */
  openIdConfiguration(tenant: string): { status: number; body: Record<string, unknown> } {
    const base = this.baseUrl();
    if (!this.knowsTenant(tenant))
      return {
        status: 400,
        body: aadError(
          "invalid_tenant",
          90002,
          `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
          base,
        ),
      };
    return {
      status: 200,
      body: {
        token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
        response_modes_supported: ["query", "fragment", "form_post"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
        scopes_supported: ["openid", "profile", "email", "offline_access"],
        issuer: `${base}/${tenant}/v2.0`,
        request_uri_parameter_supported: false,
        userinfo_endpoint: `${base}/oidc/userinfo`,
        authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/devicecode`,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
        claims_supported: [
          "sub",
          "iss",
          "cloud_instance_name",
          "cloud_instance_host_name",
          "cloud_graph_host_name",
          "msgraph_host",
          "aud",
          "exp",
          "iat",
          "auth_time",
          "acr",
          "nonce",
          "preferred_username",
          "name",
          "tid",
          "ver",
          "at_hash",
          "c_hash",
          "email",
        ],
        tenant_region_scope: "EU",
        cloud_instance_name: "fake.local",
        cloud_graph_host_name: "graph.fake.local",
        msgraph_host: "graph.fake.local",
        rbac_url: "https://pas.fake.local",
      },
    };
  }

  /** POST /{tenant}/oauth2/v2.0/token with a form body. */
  async token(tenant: string, form: URLSearchParams): Promise<TokenAnswer> {
    const base = this.baseUrl();
    const grant = form.get("grant_type");
    const clientId = form.get("client_id") ?? "";
    if (!this.knowsTenant(tenant)) return { status: 400, body: aadError("invalid_tenant", 90002, `Tenant '${tenant}' not found.`, base) };
    if (grant !== "client_credentials")
      return { status: 400, body: aadError("unsupported_grant_type", 70003, `The app requested an unsupported grant type '${grant ?? ""}'.`, base) };
    if (form.has("client_assertion") || form.has("client_assertion_type")) return this.assertionToken(tenant, form);
    const app = this.apps.get(clientId.toLowerCase());
    if (!app || app.tenantId.toLowerCase() !== tenant.toLowerCase()) return { status: 400, body: this.unknownClient(clientId, tenant) };
    if (form.get("client_secret") !== app.clientSecret) {
      return {
        status: 401,
        body: aadError(
          "invalid_client",
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
          base,
        ),
      };
    }
    return this.grant(app, tenant, form);
  }

  /** The client-assertion flavour of client_credentials, as WorkloadIdentityCredential sends it. */
  private async assertionToken(tenant: string, form: URLSearchParams): Promise<TokenAnswer> {
    const base = this.baseUrl();
    const clientId = form.get("client_id") ?? "";
    if (form.get("client_assertion_type") !== JWT_BEARER)
      return {
        status: 400,
        body: aadError("invalid_request", 90014, `The required field 'client_assertion_type' is missing or is not '${JWT_BEARER}'.`, base),
      };
    const known = this.apps.get(clientId.toLowerCase());
    // An app registration of the fake has no FICs; a managed identity may.
    const principal = this.federatedPrincipal(clientId) ?? (known && { ...known, credentials: [] });
    if (!principal || principal.tenantId.toLowerCase() !== tenant.toLowerCase()) return { status: 400, body: this.unknownClient(clientId, tenant) };
    const verdict = await checkAssertion(form.get("client_assertion") ?? "", principal, this.issuers);
    if (!verdict.ok) return { status: verdict.status, body: aadError(verdict.error, verdict.aadsts, verdict.description, base) };
    const { tenantId, objectId } = principal;
    return this.grant({ tenantId, clientId: principal.clientId, clientSecret: "", objectId }, tenant, form);
  }

  private unknownClient(clientId: string, tenant: string): Record<string, unknown> {
    return aadError("unauthorized_client", 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`, this.baseUrl());
  }

  /** The scope check and the token, once the client has proved who it is. */
  private grant(app: FakeApp, tenant: string, form: URLSearchParams): TokenAnswer {
    const scopes = (form.get("scope") ?? "").split(" ").filter((scope) => scope.endsWith("/.default"));
    const audience = scopes.length === 1 ? scopes[0]!.slice(0, -"/.default".length) : undefined;
    if (audience === undefined || !this.audiences().some((known) => known.replace(/\/+$/, "") === audience.replace(/\/+$/, ""))) {
      return {
        status: 400,
        body: aadError(
          "invalid_resource",
          500011,
          `The resource principal named ${audience ?? form.get("scope") ?? ""} was not found in the tenant named ${tenant}.`,
          this.baseUrl(),
        ),
      };
    }
    const accessToken = this.issue(app, audience);
    return {
      status: 200,
      app,
      body: { token_type: "Bearer", expires_in: this.tokenLifetimeSeconds, ext_expires_in: this.tokenLifetimeSeconds, access_token: accessToken },
    };
  }

  /** What ARM says about an Authorization header. */
  check(authorization: string | undefined): TokenCheck {
    if (!authorization) return { ok: false, code: "AuthenticationFailed", message: "Authentication failed. The 'Authorization' header is missing." };
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    const issued = token ? this.tokens.get(token) : undefined;
    if (!issued) return { ok: false, code: "InvalidAuthenticationToken", message: "The access token is invalid." };
    if (issued.expiresAt <= Date.now()) {
      return {
        ok: false,
        code: "ExpiredAuthenticationToken",
        message: `The access token expiry UTC time '${new Date(issued.expiresAt).toUTCString()}' is earlier than current UTC time '${new Date().toUTCString()}'.`,
      };
    }
    return { ok: true, app: issued.app, audience: issued.audience };
  }

  /** Every bearer token issued so far (e.g. to check that none of them shows up in logs). */
  issuedTokens(): string[] {
    return [...this.tokens.keys()];
  }

  /** Every token issued so far stops working (as after a secret rotation with revocation). */
  revokeAll(): void {
    this.tokens.clear();
  }

  private issue(app: FakeApp, audience: string): string {
    const now = Math.floor(Date.now() / 1000);
    const expires = now + this.tokenLifetimeSeconds;
    const header = { typ: "JWT", alg: "RS256", kid: "fake-key" };
    const claims = {
      aud: audience,
      iss: `https://sts.fake.local/${app.tenantId}/`,
      iat: now,
      nbf: now,
      exp: expires,
      appid: app.clientId,
      appidacr: "1",
      idtyp: "app",
      oid: app.objectId,
      sub: app.objectId,
      tid: app.tenantId,
      uti: randomUUID(),
      ver: "1.0",
    };
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const token = `${encode(header)}.${encode(claims)}.${randomBytes(32).toString("base64url")}`;
    this.tokens.set(token, { app, audience, expiresAt: expires * 1000 });
    return token;
  }
}
