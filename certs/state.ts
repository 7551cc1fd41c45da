import { X509Certificate } from "node:crypto";
import type { Pem } from "./pki.js";

/**
 * Everything the webhook's certificates are, as kept in one Secret: the signing CA, the serving
 * (leaf) certificate, the CAs the API server must trust (caBundle), and during a CA rotation the
 * next CA, staged in the bundle before anything is signed by it.
 */
export interface CertState {
  ca: Pem;
  leaf: Pem;
  bundle: string[];
  next?: Pem;
  /** When the bundle last changed (ms): the API servers must have seen it before the leaf moves. */
  bundleChangedAt: number;
  /** When the leaf last changed (ms): every replica must serve it before an old CA leaves the bundle. */
  leafChangedAt: number;
}

export interface CertPolicy {
  caValidityMs: number;
  leafValidityMs: number;
  /** Rotate when less than this share of a certificate's lifetime remains (e.g. 1/3). */
  rotateRemainingFraction: number;
  /** How long a caBundle or leaf change needs to reach every API server and replica. */
  propagationMs: number;
}

export type CertStep =
  | { kind: "create" }
  | { kind: "stage-next-ca"; reason: string }
  | { kind: "promote-next-ca" }
  | { kind: "rotate-leaf"; reason: string }
  | { kind: "trim-bundle"; keep: string[] }
  | { kind: "none" };

export function certificateWindow(pem: string): { notBefore: number; notAfter: number } {
  const cert = new X509Certificate(pem);
  return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

function nearExpiry(pem: string, now: number, fraction: number): boolean {
  const { notBefore, notAfter } = certificateWindow(pem);
  return notAfter - now < (notAfter - notBefore) * fraction;
}

function signedBy(leafPem: string, caPem: string): boolean {
  try {
    return new X509Certificate(leafPem).verify(new X509Certificate(caPem).publicKey);
  } catch {
    return false;
  }
}

function samePem(a: string, b: string): boolean {
  return a.trim() === b.trim();
}

/**
 * The next single step of the certificate life cycle (pure; the leader runs one step per check).
 * Order matters for zero failed handshakes: a new CA enters the caBundle first, the leaf moves to
 * it only after the bundle has propagated, and the old CA leaves only after the leaf has.
 */
export function nextCertStep(state: CertState | undefined, now: number, policy: CertPolicy, requiredSans: (leaf: string) => boolean): CertStep {
  if (!state) return { kind: "create" };
  const settled = (since: number) => now - since >= policy.propagationMs;
  if (state.next) return settled(state.bundleChangedAt) ? { kind: "promote-next-ca" } : { kind: "none" };
  if (nearExpiry(state.ca.cert, now, policy.rotateRemainingFraction)) return { kind: "stage-next-ca", reason: "CA near expiry" };
  if (!signedBy(state.leaf.cert, state.ca.cert)) return { kind: "rotate-leaf", reason: "serving certificate not signed by the current CA" };
  if (nearExpiry(state.leaf.cert, now, policy.rotateRemainingFraction)) return { kind: "rotate-leaf", reason: "serving certificate near expiry" };
  if (!requiredSans(state.leaf.cert)) return { kind: "rotate-leaf", reason: "serving certificate lacks a required name" };
  const keep = state.bundle.filter((pem) => samePem(pem, state.ca.cert) || (!settled(state.leafChangedAt) && certificateWindow(pem).notAfter > now));
  if (!state.bundle.some((pem) => samePem(pem, state.ca.cert))) return { kind: "trim-bundle", keep: [state.ca.cert, ...keep] };
  if (keep.length < state.bundle.length && settled(state.leafChangedAt)) return { kind: "trim-bundle", keep };
  return { kind: "none" };
}

/** Whether a certificate names every DNS name and IP in `names`. */
export function coversNames(pem: string, names: readonly string[]): boolean {
  const altNames = new X509Certificate(pem).subjectAltName ?? "";
  const entries = new Set(altNames.split(",").map((entry) => entry.trim().replace(/^(DNS|IP Address):/, "")));
  return names.every((name) => entries.has(name));
}
