// Compact JWS (RFC 7515) with the two algorithms Kubernetes signs service-account tokens with
// (RS256, ES256), on Node's own crypto: decoding and verifying for the fake's Entra, signing for tests.
import { createPublicKey, sign, verify, type JsonWebKey, type KeyObject } from "node:crypto";

export type JwtAlgorithm = "RS256" | "ES256";

/** A JWK Set document, as served at an OIDC issuer's jwks_uri (kube-apiserver: /openid/v1/jwks). */
export interface Jwks {
  keys: JsonWebKey[];
}

export interface DecodedJwt {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** `<header>.<payload>` as sent: what the signature covers. */
  signingInput: string;
  signature: Buffer;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: "unsupported-algorithm" | "unknown-key" | "bad-signature" };

const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");

function decodePart(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The parts of a compact JWS, or undefined when it is not one. */
export function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((part) => !/^[A-Za-z0-9_-]*$/.test(part))) return undefined;
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodePart(headerPart);
  const claims = decodePart(payloadPart);
  if (!header || !claims || signaturePart === "") return undefined;
  return { header, claims, signingInput: `${headerPart}.${payloadPart}`, signature: Buffer.from(signaturePart, "base64url") };
}

/** A JWKS document checked for shape; throws saying what is wrong. */
export function parseJwks(document: unknown, origin: string): Jwks {
  const keys = typeof document === "object" && document !== null ? (document as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) throw new Error(`${origin}: a JWKS document needs a "keys" array, got ${JSON.stringify(document)?.slice(0, 200)}`);
  for (const [index, key] of keys.entries())
    if (typeof key !== "object" || key === null || typeof (key as { kty?: unknown }).kty !== "string")
      throw new Error(`${origin}: keys[${index}] is not a JWK (no "kty")`);
  return { keys: keys as JsonWebKey[] };
}

function fits(algorithm: JwtAlgorithm, key: JsonWebKey): boolean {
  return algorithm === "RS256" ? key.kty === "RSA" : key.kty === "EC" && key.crv === "P-256";
}

function verifiesWith(jwt: DecodedJwt, algorithm: JwtAlgorithm, jwk: JsonWebKey): boolean {
  try {
    const key = createPublicKey({ key: jwk, format: "jwk" });
    const data = Buffer.from(jwt.signingInput);
    // JWS carries ECDSA signatures as r || s (IEEE P1363), not DER.
    return algorithm === "RS256" ? verify("sha256", data, key, jwt.signature) : verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, jwt.signature);
  } catch {
    return false;
  }
}

/** Whether a key of the set signed the token: the one its `kid` names, or any that fits when it names none. */
export function verifyJwt(jwt: DecodedJwt, jwks: Jwks): SignatureCheck {
  const algorithm = jwt.header.alg;
  if (algorithm !== "RS256" && algorithm !== "ES256") return { ok: false, reason: "unsupported-algorithm" };
  const kid = jwt.header.kid;
  const candidates = jwks.keys.filter((key) => (kid === undefined || key.kid === kid) && fits(algorithm, key));
  if (candidates.length === 0) return { ok: false, reason: "unknown-key" };
  return candidates.some((key) => verifiesWith(jwt, algorithm, key)) ? { ok: true } : { ok: false, reason: "bad-signature" };
}

/** Signs claims as a compact JWS (for tests: tokens an issuer would mint). */
export function signJwt(claims: Record<string, unknown>, privateKey: KeyObject, header: { alg: JwtAlgorithm; kid?: string }): string {
  const signingInput = `${encode({ ...header, typ: "JWT" })}.${encode(claims)}`;
  const data = Buffer.from(signingInput);
  const signature = header.alg === "RS256" ? sign("sha256", data, privateKey) : sign("sha256", data, { key: privateKey, dsaEncoding: "ieee-p1363" });
  return `${signingInput}.${signature.toString("base64url")}`;
}

/** The public half of a key as a JWKS entry, the way kube-apiserver publishes it. */
export function publicJwk(key: KeyObject, kid: string, alg: JwtAlgorithm): JsonWebKey {
  const { kty, n, e, crv, x, y } = (key.type === "private" ? createPublicKey(key) : key).export({ format: "jwk" });
  const fields = Object.entries({ kty, n, e, crv, x, y }).filter(([, value]) => value !== undefined);
  return { ...Object.fromEntries(fields), kid, alg, use: "sig" };
}
