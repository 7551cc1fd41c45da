// What Entra checks before it exchanges a client assertion (workload identity federation) for a
// token: a federated identity credential (FIC) of the client matching the assertion's iss, sub and
// aud; a signature by a key the issuer publishes; a valid time range. The refusals are Entra's own
// codes and words as real answers quoted in public threads show them, e.g. AADSTS70021 and 700024
// (github.com/external-secrets/external-secrets/issues/2783, Azure/azure-workload-identity#693),
// 700211/700213 (Azure/azure-workload-identity#1200, Azure/login#482), 7000272 (#1232 there),
// 50166 (#642 there). 700212's words follow 700211's and 700213's; 700027's follow the certificate flow.
import { request } from "node:https";
import type { FakeFederatedCredential } from "./model.js";
import { decodeJwt, parseJwks, verifyJwt, type DecodedJwt, type Jwks } from "./jwt.js";

export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const WIF_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

/**
 * Where the fake gets an issuer's signing keys: the JWKS document itself, a URL serving it (with
 * TLS options, e.g. a client certificate for kube-apiserver), or a function returning it. URLs and
 * functions are read on every assertion, so a key rotation shows at once (Entra caches for a while;
 * tests want the change, not the cache).
 */
export type IssuerKeySource = Jwks | { jwksUri: string; ca?: string; cert?: string; key?: string } | (() => Promise<unknown>);

/** The client a token request names, and the FICs it trusts. */
export interface FederatedPrincipal {
  tenantId: string;
  clientId: string;
  objectId: string;
  credentials: FakeFederatedCredential[];
}

export type AssertionVerdict = { ok: true } | { ok: false; status: number; error: string; aadsts: number; description: string };

const refuse = (status: number, error: string, aadsts: number, description: string): AssertionVerdict => ({ ok: false, status, error, aadsts, description });
const invalidClient = (aadsts: number, description: string) => refuse(401, "invalid_client", aadsts, description);

/** The issuers the fake's Entra can verify tokens of (in Azure: any reachable OIDC issuer). */
export class TrustedIssuers {
  private readonly sources = new Map<string, IssuerKeySource>();

  trust(issuer: string, source: IssuerKeySource): void {
    let url: URL;
    try {
      url = new URL(issuer);
    } catch {
      throw new Error(`fake Entra: issuer "${issuer}" is not a URL`);
    }
    if (url.protocol !== "https:") throw new Error(`fake Entra: issuer "${issuer}" must be an https URL, as Entra requires`);
    if (typeof source !== "function" && "keys" in source) parseJwks(source, `fake Entra: keys of ${issuer}`);
    else if (typeof source !== "function" && !/^https:\/\//.test(source.jwksUri))
      throw new Error(`fake Entra: jwksUri of ${issuer} must be an https URL, got "${source.jwksUri}"`);
    this.sources.set(issuer, source);
  }

  forget(issuer: string): void {
    this.sources.delete(issuer);
  }

  /** The issuer's keys now, or why they could not be had. */
  async keys(issuer: string): Promise<{ ok: true; jwks: Jwks } | { ok: false; reason: string }> {
    const source = this.sources.get(issuer);
    if (!source) return { ok: false, reason: `issuer ${issuer} is not trusted by the fake` };
    try {
      if (typeof source === "function") return { ok: true, jwks: parseJwks(await source(), `keys of ${issuer}`) };
      if ("keys" in source) return { ok: true, jwks: source };
      return { ok: true, jwks: parseJwks(await fetchJson(source), source.jwksUri) };
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
  }
}

function fetchJson(source: { jwksUri: string; ca?: string; cert?: string; key?: string }): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const { jwksUri, ...tls } = source;
    const req = request(jwksUri, { ...tls, timeout: 5_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) return reject(new Error(`GET ${jwksUri}: ${res.statusCode} ${text.slice(0, 200)}`));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`GET ${jwksUri}: not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${jwksUri} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** Entra's checks, in the order its refusals suggest: shape, FIC match, issuer keys, signature, time. */
export async function checkAssertion(assertion: string, principal: FederatedPrincipal, issuers: TrustedIssuers, now = Date.now()): Promise<AssertionVerdict> {
  const jwt = decodeJwt(assertion);
  const { iss, sub } = jwt?.claims ?? {};
  if (!jwt || typeof iss !== "string" || typeof sub !== "string") return refuse(400, "invalid_request", 50027, "JWT token is invalid or malformed.");
  const matched = matchCredential(jwt, principal.credentials);
  if (!matched.ok) return matched;
  const keys = await issuers.keys(iss);
  if (!keys.ok) return refuse(400, "invalid_request", 50166, "Request to External OIDC endpoint failed.");
  const signature = verifyJwt(jwt, keys.jwks);
  if (!signature.ok) return signatureRefusal(signature.reason, jwt, iss);
  return timeRefusal(jwt, now) ?? { ok: true };
}

function audiencesOf(jwt: DecodedJwt): string[] {
  const aud = jwt.claims.aud;
  return typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((item): item is string => typeof item === "string") : [];
}

/** Exact, case-sensitive matching (Entra's since 2024), narrowing issuer, then subject, then audience. */
function matchCredential(jwt: DecodedJwt, credentials: FakeFederatedCredential[]): AssertionVerdict {
  const iss = jwt.claims.iss as string;
  const sub = jwt.claims.sub as string;
  const audiences = audiencesOf(jwt);
  if (credentials.length === 0)
    return invalidClient(
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${audiences.join(",")}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation`,
    );
  const check = `Check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${WIF_DOCS}`;
  const byIssuer = credentials.filter((credential) => credential.issuer === iss);
  if (byIssuer.length === 0) return invalidClient(700211, `No matching federated identity record found for presented assertion issuer '${iss}'. ${check}`);
  const bySubject = byIssuer.filter((credential) => credential.subject === sub);
  if (bySubject.length === 0) return invalidClient(700213, `No matching federated identity record found for presented assertion subject '${sub}'. ${check}`);
  if (!bySubject.some((credential) => credential.audiences.some((audience) => audiences.includes(audience))))
    return invalidClient(700212, `No matching federated identity record found for presented assertion audience '${audiences.join(",")}'. ${check}`);
  return { ok: true };
}

function signatureRefusal(reason: "unsupported-algorithm" | "unknown-key" | "bad-signature", jwt: DecodedJwt, iss: string): AssertionVerdict {
  switch (reason) {
    case "unsupported-algorithm":
      return invalidClient(5002738, `Invalid JWT token. '${String(jwt.header.alg)}' is not a supported signing algorithm.`);
    case "unknown-key":
      return invalidClient(
        7000272,
        `The certificate with identifier ${typeof jwt.header.kid === "string" ? jwt.header.kid : ""} used to sign the federated credential could not be found in the metadata of identity provider ${iss}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`,
      );
    case "bad-signature":
      return invalidClient(
        700027,
        "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value.]",
      );
  }
}

// Entra prints times with seven fractional digits.
const entraTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$10000Z");

function timeRefusal(jwt: DecodedJwt, now: number): AssertionVerdict | undefined {
  const { exp, nbf, iat } = jwt.claims;
  if (typeof exp !== "number") return refuse(400, "invalid_request", 50027, "JWT token is invalid or malformed.");
  const from = typeof nbf === "number" ? nbf : typeof iat === "number" ? iat : 0;
  if (exp * 1000 > now && from * 1000 <= now) return undefined;
  return invalidClient(
    700024,
    `Client assertion is not within its valid time range. Current time: ${entraTime(now)}, assertion valid from ${entraTime(from * 1000)}, expiry time of assertion ${entraTime(exp * 1000)}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .`,
  );
}
