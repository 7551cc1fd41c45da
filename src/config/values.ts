// Parsers for one raw flag value each. They return the value or the reason it is bad; the caller
// adds which flag (and env var) it came from, so every message names its source.
import { isIP } from "node:net";
import { parseDuration } from "./duration.js";

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

// A superset of Go's strconv.ParseBool (which go-flags uses for env), so every value the Go
// operator accepted still works.
const TRUE = new Set(["1", "t", "true", "y", "yes", "on"]);
const FALSE = new Set(["0", "f", "false", "n", "no", "off"]);

export function parseBool(raw: string): Parsed<boolean> {
  const text = raw.trim().toLowerCase();
  if (TRUE.has(text)) return ok(true);
  if (FALSE.has(text)) return ok(false);
  return bad("not a boolean (use true or false)");
}

export function parseDurationMs(raw: string): Parsed<number> {
  const parsed = parseDuration(raw.trim());
  return parsed.ok ? ok(parsed.ms) : bad("not a Go duration (examples: 90s, 1h30m)");
}

export function parseInt10(raw: string): Parsed<number> {
  const text = raw.trim();
  if (!/^[+-]?\d+$/.test(text)) return bad("not an integer");
  const value = Number(text);
  return Number.isSafeInteger(value) ? ok(value) : bad("integer out of range");
}

/** Env lists are space separated (go-flags env-delim " "); runs of white space and empty items are dropped. */
export function splitEnvList(raw: string): string[] {
  return raw.split(/\s+/).filter((item) => item !== "");
}

export interface ListenAddress {
  /** As configured, e.g. ":8080". */
  readonly text: string;
  /** Undefined: all interfaces (Go's ":8080"). */
  readonly host: string | undefined;
  readonly port: number;
}

/** Go's "[host]:port" listen syntax: ":8080", "0.0.0.0:8080", "[::1]:9443", "localhost:8080". */
export function parseAddress(raw: string): Parsed<ListenAddress> {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw);
  const reason = "not a listen address (examples: :8080, 127.0.0.1:8080, [::1]:8080)";
  if (match === null) return bad(reason);
  const bracketed = match[1];
  if (bracketed !== undefined && isIP(bracketed) !== 6) return bad(reason);
  const port = Number(match[3]);
  if (port > 65535) return bad("port must be at most 65535");
  const host = bracketed ?? match[2];
  return ok({ text: raw, host: host === "" ? undefined : host, port });
}

/**
 * When to rotate a certificate: once less than `fraction` of its validity remains, or once less than
 * `beforeMs` remains. A fraction scales with the validity, so it stays sensible when the validity changes.
 */
export type RotationPolicy = { kind: "fraction"; fraction: number; text: string } | { kind: "before"; beforeMs: number; text: string };

export function parseRotation(raw: string): Parsed<RotationPolicy> {
  const text = raw.trim();
  const reason = "not a fraction of the validity between 0 and 1 (1/3, 0.25) or a Go duration (720h)";
  const ratio = /^(\d+)\/(\d+)$/.exec(text);
  if (ratio !== null || /^(0|1)?\.\d+$/.test(text)) {
    const fraction = ratio !== null ? Number(ratio[1]) / Number(ratio[2]) : Number(text);
    if (!(fraction > 0 && fraction < 1)) return bad(reason);
    return ok({ kind: "fraction", fraction, text });
  }
  const duration = parseDuration(text);
  if (!duration.ok || duration.ms <= 0) return bad(reason);
  return ok({ kind: "before", beforeMs: duration.ms, text });
}

/** How long before its expiry a certificate valid for `validityMs` is rotated. */
export function rotationLeadMs(policy: RotationPolicy, validityMs: number): number {
  return policy.kind === "fraction" ? validityMs * policy.fraction : policy.beforeMs;
}

const DNS_NAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i;

/** A certificate SAN: an IP address or a DNS name (optionally a leading wildcard label). */
export function checkSan(value: string): string | undefined {
  if (isIP(value) !== 0) return undefined;
  if (value.length <= 253 && DNS_NAME.test(value)) return undefined;
  return "not a DNS name or IP address";
}

/** `--kubernetes.label.format`: empty, or exactly one %s and no other verb. */
export function checkLabelFormat(value: string): string | undefined {
  if (value === "") return undefined;
  const verbs = value.match(/%./g) ?? [];
  if (verbs.length !== 1 || verbs[0] !== "%s") return "must contain exactly one %s and no other % (or be empty for no lookup labels)";
  return undefined;
}
