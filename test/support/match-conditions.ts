// The validating webhooks' matchConditions against the guard they skip: an evaluator for exactly the
// CEL the chart renders into them (anything else throws, so a new form needs its own look), and the
// table of principals × guarded kinds × operations that test/webhooks-manifest.test.ts and
// test/chart.test.ts check against decideGuarded with the policy parsed from the same render's
// Deployment env. test/zero-replicas.e2e.test.ts checks the same table on the real API server.
import type { V1Deployment, V1ValidatingWebhook, V1ValidatingWebhookConfiguration } from "@kubernetes/client-node";
import { guardPolicyFrom } from "../../src/webhook/decide-guard.js";
import { parseConfig } from "../../src/config/config.js";
import type { AdmissionRequest, Operation } from "../../src/webhook/admission.js";
import { decideGuarded, GUARDS, NAMESPACE_CLEANUP_USERS, type GuardedKind, type GuardPolicy } from "../../src/webhook/decide-guard.js";
import { AAD_GROUP } from "../../src/kube/resources.js";
import { podEnv } from "./manifests.js";

/** What the API server sees of a request in these expressions. */
export interface CelRequest {
  operation: Operation;
  /** groups absent: a user the authenticator gave none (CEL then has no such field). */
  userInfo: { username: string; groups?: readonly string[] };
}

type Value = string | boolean | readonly string[];
type Token = { kind: "punct"; text: string } | { kind: "string"; text: string } | { kind: "ident"; text: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  const pattern = /\s*(?:(&&|\|\||==|[()[\],!.])|'([^'\\\n]*)'|([A-Za-z_][A-Za-z0-9_]*))/y;
  let at = 0;
  while (at < expression.length) {
    if (/^\s*$/.test(expression.slice(at))) break;
    pattern.lastIndex = at;
    const match = pattern.exec(expression);
    if (!match) throw new Error(`CEL outside the rendered subset at ${at}: ${expression.slice(at, at + 30)}`);
    at = pattern.lastIndex;
    if (match[1] !== undefined) tokens.push({ kind: "punct", text: match[1] });
    else if (match[2] !== undefined) tokens.push({ kind: "string", text: match[2] });
    else tokens.push({ kind: "ident", text: match[3]! });
  }
  return tokens;
}

class NoSuchKey extends Error {}

/**
 * Evaluates one matchCondition expression as CEL does for the forms the chart renders: `!`, `&&`,
 * `||` (left to right; a false left side of `&&` never evaluates the right, as `has(x) && x...`
 * relies on), `==`, `in` a list literal, `has(request.userInfo.groups)`, `groups.exists(g, g in [...])`.
 * Throws NoSuchKey for an absent field read outside has(), as the API server's evaluation errors.
 */
export function evaluateCel(expression: string, request: CelRequest): boolean {
  const tokens = tokenize(expression);
  let position = 0;
  const peek = (text: string) => tokens[position]?.kind === "punct" && tokens[position]?.text === text;
  const expect = (text: string) => {
    if (!peek(text)) throw new Error(`CEL outside the rendered subset: expected ${text} at token ${position} of ${expression}`);
    position += 1;
  };
  const scope = new Map<string, string>();

  // Each parse function returns a thunk, so `&&` and `||` can skip their right side.
  type Thunk = () => Value;
  const path = (): Thunk => {
    const first = tokens[position];
    if (first?.kind !== "ident") throw new Error(`CEL outside the rendered subset at token ${position} of ${expression}`);
    position += 1;
    if (scope.has(first.text)) {
      const name = first.text;
      return () => scope.get(name)!;
    }
    const names = [first.text];
    while (peek(".") && tokens[position + 1]?.kind === "ident" && tokens[position + 1]?.text !== "exists") {
      position += 1;
      names.push(tokens[position]!.text);
      position += 1;
    }
    const dotted = names.join(".");
    if (dotted === "request.operation") return () => request.operation;
    if (dotted === "request.userInfo.username") return () => request.userInfo.username;
    if (dotted === "request.userInfo.groups")
      return () => {
        if (request.userInfo.groups === undefined) throw new NoSuchKey("no such key: groups");
        return request.userInfo.groups;
      };
    throw new Error(`CEL outside the rendered subset: ${dotted}`);
  };
  const list = (): Thunk => {
    expect("[");
    const items: string[] = [];
    while (!peek("]")) {
      const token = tokens[position];
      if (token?.kind !== "string") throw new Error(`CEL outside the rendered subset: a list of string literals only, in ${expression}`);
      items.push(token.text);
      position += 1;
      if (!peek("]")) expect(",");
    }
    expect("]");
    return () => items;
  };
  const operand = (): Thunk => {
    const token = tokens[position];
    if (token?.kind === "string") {
      position += 1;
      return () => token.text;
    }
    if (peek("[")) return list();
    return path();
  };
  const primary = (): Thunk => {
    if (peek("(")) {
      position += 1;
      const inner = or();
      expect(")");
      return inner;
    }
    if (tokens[position]?.kind === "ident" && tokens[position]?.text === "has" && tokens[position + 1]?.text === "(") {
      position += 2;
      const field = path();
      expect(")");
      return () => {
        try {
          field();
          return true;
        } catch (error) {
          if (error instanceof NoSuchKey) return false;
          throw error;
        }
      };
    }
    const left = operand();
    if (peek(".") && tokens[position + 1]?.text === "exists") {
      position += 2;
      expect("(");
      const variable = tokens[position];
      if (variable?.kind !== "ident") throw new Error(`CEL outside the rendered subset: exists needs a variable, in ${expression}`);
      position += 1;
      expect(",");
      scope.set(variable.text, "");
      const body = or();
      scope.delete(variable.text);
      expect(")");
      return () => {
        const items = left();
        if (!Array.isArray(items)) throw new Error("exists on a non-list");
        return (items as readonly string[]).some((item) => {
          scope.set(variable.text, item);
          try {
            return truth(body());
          } finally {
            scope.delete(variable.text);
          }
        });
      };
    }
    if (peek("==")) {
      position += 1;
      const right = operand();
      return () => left() === right();
    }
    if (tokens[position]?.kind === "ident" && tokens[position]?.text === "in") {
      position += 1;
      const right = operand();
      return () => {
        const items = right();
        if (!Array.isArray(items)) throw new Error("in needs a list");
        return (items as readonly string[]).includes(left() as string);
      };
    }
    return left;
  };
  const truth = (value: Value): boolean => {
    if (typeof value !== "boolean") throw new Error(`not a bool: ${JSON.stringify(value)} in ${expression}`);
    return value;
  };
  const unary = (): Thunk => {
    if (peek("!")) {
      position += 1;
      const inner = unary();
      return () => !truth(inner());
    }
    return primary();
  };
  const and = (): Thunk => {
    let left = unary();
    while (peek("&&")) {
      position += 1;
      const [a, b] = [left, unary()];
      left = () => truth(a()) && truth(b());
    }
    return left;
  };
  function or(): Thunk {
    let left = and();
    while (peek("||")) {
      position += 1;
      const [a, b] = [left, and()];
      left = () => truth(a()) || truth(b());
    }
    return left;
  }
  const parsed = or();
  if (position !== tokens.length) throw new Error(`CEL outside the rendered subset: trailing tokens in ${expression}`);
  return truth(parsed());
}

export type Admission = "skip" | "call" | "error";

/** The API server's rule: any condition false skips the webhook; all true calls it; otherwise an error (failurePolicy then decides). */
export function matchOutcome(webhook: V1ValidatingWebhook, request: CelRequest): Admission {
  let errored = false;
  for (const condition of webhook.matchConditions ?? []) {
    try {
      if (!evaluateCel(condition.expression, request)) return "skip";
    } catch (error) {
      if (!(error instanceof NoSuchKey)) throw error;
      errored = true;
    }
  }
  return errored ? "error" : "call";
}

export interface Principal {
  /** How the table names it. */
  who: string;
  username: string;
  groups?: readonly string[];
}

const serviceAccount = (who: string, username: string): Principal => {
  const namespace = username.split(":")[2] ?? "";
  return { who, username, groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"] };
};

/** The principals worth asking about, for a guard policy: each allowed one, and some that are not. */
export function principalsFor(policy: GuardPolicy): Principal[] {
  return [
    serviceAccount("the operator", policy.operatorUser),
    ...[...policy.adminUsers].map((user) => ({ who: `admin user ${user}`, username: user, groups: ["system:authenticated"] })),
    ...[...policy.adminGroups].map((group) => ({ who: `a member of ${group}`, username: "someone", groups: [group, "system:authenticated"] })),
    ...[...policy.micUsers].map((user) => serviceAccount(`MIC ${user}`, user)),
    ...[...NAMESPACE_CLEANUP_USERS].map((user) => serviceAccount(`cleanup ${user}`, user)),
    { who: "jane", username: "jane", groups: ["developers", "system:authenticated"] },
    serviceAccount("a random ServiceAccount", "system:serviceaccount:team-a:default"),
    // Another namespace's ServiceAccount of the operator's name: a look-alike, not the operator.
    serviceAccount("the operator's name elsewhere", policy.operatorUser.replace(/^(system:serviceaccount:)[^:]+/, "$1team-a")),
    { who: "a user without groups", username: "nobody" },
  ];
}

export const OPERATIONS: readonly Operation[] = ["CREATE", "UPDATE", "DELETE"];
export const KINDS = Object.keys(GUARDS) as GuardedKind[];

/** The guard policy a replica started from `deployment` holds: its env parsed as the operator parses it, its user the ServiceAccount it runs as. */
export function policyOf(deployment: V1Deployment): GuardPolicy {
  const parsed = parseConfig(["run"], podEnv(deployment));
  if (!parsed.ok) throw new Error(`the Deployment's env does not parse: ${parsed.help ? "help" : parsed.error}`);
  const namespace = deployment.metadata?.namespace;
  const serviceAccountName = deployment.spec?.template.spec?.serviceAccountName;
  if (!namespace || !serviceAccountName) throw new Error("the Deployment names no namespace or ServiceAccount");
  return guardPolicyFrom(`system:serviceaccount:${namespace}:${serviceAccountName}`, parsed.config.webhook, parsed.config.azureIdentity.namespaceTemplate.tags);
}

/** The validating webhook that guards `kind`, by its rules. */
export function webhookFor(configuration: V1ValidatingWebhookConfiguration, kind: GuardedKind): V1ValidatingWebhook {
  const found = (configuration.webhooks ?? []).filter((webhook) => webhook.rules?.some((rule) => rule.resources?.includes(GUARDS[kind].resource)));
  if (found.length !== 1) throw new Error(`${found.length} validating webhooks guard ${kind}`);
  return found[0]!;
}

export function guardRequest(kind: GuardedKind, operation: Operation, principal: Principal): AdmissionRequest {
  return {
    uid: "u",
    kind: { group: AAD_GROUP, version: "v1", kind },
    resource: { group: AAD_GROUP, version: "v1", resource: GUARDS[kind].resource },
    namespace: "team-a",
    name: "x",
    operation,
    userInfo: { username: principal.username, ...(principal.groups ? { groups: [...principal.groups] } : {}) },
  };
}

export interface Cell {
  who: string;
  kind: GuardedKind;
  operation: Operation;
  admission: Admission;
  guardAllows: boolean;
}

/** Every principal × kind × operation: what the matchConditions do and what the guard decides. */
export function skipTable(configuration: V1ValidatingWebhookConfiguration, policy: GuardPolicy): Cell[] {
  const cells: Cell[] = [];
  for (const principal of principalsFor(policy))
    for (const kind of KINDS)
      for (const operation of OPERATIONS) {
        const admission = matchOutcome(webhookFor(configuration, kind), {
          operation,
          userInfo: { username: principal.username, ...(principal.groups ? { groups: principal.groups } : {}) },
        });
        const guardAllows = decideGuarded(kind, guardRequest(kind, operation, principal), policy).allowed;
        cells.push({ who: principal.who, kind, operation, admission, guardAllows });
      }
  return cells;
}
