// Templates for the AzureIdentity name and namespace. They are Liquid, but the Go operator's users
// have Go templates in their env (`{{ .Name }}-{{ .ClientId }}`, `{{index .Tags "k8snamespace"}}`),
// so those simple forms are translated to Liquid once at start-up. Everything else Go can do is
// refused at start-up rather than guessed at: a wrong guess would rename or move identities.
import { Liquid, type Template } from "liquidjs";

export const TEMPLATE_FIELDS = ["Id", "Name", "Location", "ResourceGroup", "SubscriptionId", "ClientId", "TenantId", "PrincipalID", "Tags", "Type"] as const;

/** What a template sees of one MSI (the Go operator's field names, so existing templates keep working). */
export type TemplateFields = { readonly [Field in (typeof TEMPLATE_FIELDS)[number]]: Field extends "Tags" ? Readonly<Record<string, string>> : string };

export interface CompiledTemplate {
  /** As configured. */
  readonly source: string;
  /** "go" when the source was a Go template and has been translated. */
  readonly dialect: "go" | "liquid";
  /** The Liquid source that is rendered. */
  readonly liquid: string;
  /** The MSI tag keys the template reads (Tags.x, Tags["x"]), in order of first use. */
  readonly tags: readonly string[];
  /** Throws only on a render-time Liquid error (e.g. a filter given a bad argument). */
  render(fields: Partial<TemplateFields>): string;
}

export type CompileResult =
  | { ok: true; template: CompiledTemplate }
  /** `error` is the whole start-up line; `reason` is the part after the flag and value. */
  | { ok: false; error: string; reason: string };

const engine = new Liquid({
  strictFilters: true, // a misspelt filter fails start-up, not every render
  strictVariables: false, // a missing tag renders empty, as Go's index on a map
  ownPropertyOnly: true,
  templates: {}, // never read files
});
// Templates come from flags and env; they must not reach the file system or other templates.
for (const tag of ["include", "render", "layout"]) {
  engine.registerTag(tag, {
    parse() {
      throw new Error(`the "${tag}" tag is not available in these templates`);
    },
    render() {
      return "";
    },
  });
}

const SUPPORTED_GO = 'supported Go forms: {{ .Field }}, {{ index .Tags "key" }}; anything else can be written in Liquid, e.g. {{ Name | downcase }}';
const GO_KEYWORDS = new Set(["if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"]);
const IDENTIFIER = "[A-Za-z_][A-Za-z0-9_]*";
const FIELD = new RegExp(`^\\.(${IDENTIFIER})$`);
const TAG_FIELD = new RegExp(`^\\.Tags\\.(${IDENTIFIER})$`);
const INDEX_TAG = /^index\s+\.Tags\s+(?:"([^"\\]*)"|`([^`]*)`)$/;

interface Action {
  /** The text between the delimiters, without trim markers. */
  inner: string;
  trimLeft: boolean;
  trimRight: boolean;
  /** As written, for messages. */
  raw: string;
}
type Segment = { text: string } | { action: Action };

export function compileTemplate(source: string, flagName: string): CompileResult {
  const fail = (reason: string): CompileResult => ({ ok: false, reason, error: `invalid value ${JSON.stringify(source)} for ${flagName}: ${reason}` });
  const segments = scanGoActions(source);
  const dialect = segments !== undefined && segments.some((s) => "action" in s && looksLikeGo(s.action.inner)) ? "go" : "liquid";
  let liquid = source;
  if (dialect === "go") {
    const translated = translateGo(segments!);
    if (!translated.ok) return fail(translated.reason);
    liquid = translated.liquid;
  }
  let parsed: Template[];
  try {
    parsed = engine.parse(liquid);
  } catch (error) {
    const message = (error as Error).message.split("\n")[0] ?? "";
    return fail(dialect === "go" ? `translated Go template does not parse as Liquid: ${message}` : `not a valid Liquid template: ${message}`);
  }
  return {
    ok: true,
    template: {
      source,
      dialect,
      liquid,
      tags: tagsRead(parsed),
      // A copy: increment/decrement write into the scope object, and one MSI must not affect the next.
      render: (fields) => String(engine.renderSync(parsed, { ...fields }) ?? ""),
    },
  };
}

function tagsRead(parsed: Template[]): string[] {
  const keys = engine
    .globalVariableSegmentsSync(parsed)
    .filter((segments) => segments[0] === "Tags" && typeof segments[1] === "string")
    .map((segments) => String(segments[1]));
  return [...new Set(keys)];
}

/**
 * Splits `source` at Go's `{{ }}` delimiters (honouring quotes, so `"}}"` in a string does not end an
 * action); undefined when an action is not closed, which only Liquid can then explain.
 */
function scanGoActions(source: string): Segment[] | undefined {
  const segments: Segment[] = [];
  let at = 0;
  while (at < source.length) {
    const open = source.indexOf("{{", at);
    if (open < 0) break;
    if (open > at) segments.push({ text: source.slice(at, open) });
    const close = findClose(source, open + 2);
    if (close < 0) return undefined;
    let inner = source.slice(open + 2, close);
    // Go's trim markers need white space next to the dash ("{{-3}}" is the number -3).
    const trimLeft = /^-[ \t\r\n]/.test(inner);
    const trimRight = /[ \t\r\n]-$/.test(inner);
    if (trimLeft) inner = inner.slice(1);
    if (trimRight) inner = inner.slice(0, -1);
    segments.push({ action: { inner: inner.trim(), trimLeft, trimRight, raw: source.slice(open, close + 2) } });
    at = close + 2;
  }
  if (at < source.length) segments.push({ text: source.slice(at) });
  return segments;
}

function findClose(source: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < source.length; i++) {
    const c = source[i];
    if (quote !== undefined) {
      if (c === "\\" && quote !== "`") i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "}" && source[i + 1] === "}") return i;
  }
  return -1;
}

/** Go reaches data through a leading dot or `$`, and tags through `index`; Liquid does neither. */
function looksLikeGo(inner: string): boolean {
  const bare = stripStrings(inner);
  return /(^|[\s(,])[.$]/.test(bare) || /^index\b/.test(bare) || bare.startsWith("/*");
}

function stripStrings(inner: string): string {
  return inner.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

function translateGo(segments: readonly Segment[]): { ok: true; liquid: string } | { ok: false; reason: string } {
  let liquid = "";
  for (const segment of segments) {
    if ("text" in segment) {
      // In Go this is literal text, but nobody puts "{%" into a name on purpose: it is Liquid mixed in.
      if (segment.text.includes("{%")) return { ok: false, reason: `Liquid tags ({% %}) cannot be mixed with Go template actions; ${SUPPORTED_GO}` };
      liquid += segment.text;
      continue;
    }
    const { action } = segment;
    const expression = goExpression(action.inner);
    if (typeof expression !== "string")
      return { ok: false, reason: `unsupported Go template action ${action.raw}: ${expression.unsupported} (${SUPPORTED_GO})` };
    liquid += `{{${action.trimLeft ? "-" : ""} ${expression} ${action.trimRight ? "-" : ""}}}`;
  }
  return { ok: true, liquid };
}

/** The Liquid expression for one supported Go action, or why it is not supported. */
function goExpression(inner: string): string | { unsupported: string } {
  const field = FIELD.exec(inner)?.[1];
  if (field !== undefined && field !== "Tags" && (TEMPLATE_FIELDS as readonly string[]).includes(field)) return field;
  const tagKey =
    TAG_FIELD.exec(inner)?.[1] ??
    INDEX_TAG.exec(inner)
      ?.slice(1)
      .find((key) => key !== undefined);
  if (tagKey !== undefined) return tagLookup(tagKey);
  return { unsupported: whyUnsupported(inner) };
}

function tagLookup(key: string): string | { unsupported: string } {
  if (key.includes("\\")) return { unsupported: "tag keys with a backslash are not supported" };
  if (!key.includes('"')) return `Tags["${key}"]`;
  if (!key.includes("'")) return `Tags['${key}']`;
  return { unsupported: "tag keys with both quote characters are not supported" };
}

function whyUnsupported(inner: string): string {
  const bare = stripStrings(inner);
  const word = /^[A-Za-z_]\w*/.exec(bare)?.[0];
  if (inner === "") return "empty actions are not supported";
  if (bare.startsWith("/*")) return "comments are not supported";
  if (bare.includes("|")) return "pipelines (|) are not supported";
  if (word !== undefined && GO_KEYWORDS.has(word)) return `"${word}" actions are not supported`;
  if (bare.includes("$")) return "variables ($) are not supported";
  if (word === "index") return 'index is supported only as index .Tags "key" (a plain double-quoted or back-quoted key)';
  if (word !== undefined) return `functions such as ${word} are not supported`;
  if (/[()]/.test(bare)) return "parentheses are not supported";
  const path = /^\.([A-Za-z_]\w*)(\.\S*)?$/.exec(bare);
  if (path === null) return "only a single field or tag lookup is supported";
  const name = path[1]!;
  if (!(TEMPLATE_FIELDS as readonly string[]).includes(name)) {
    const similar = TEMPLATE_FIELDS.find((known) => known.toLowerCase() === name.toLowerCase());
    return `unknown field .${name}${similar ? ` (did you mean .${similar}?)` : ""}; fields: ${TEMPLATE_FIELDS.join(", ")}`;
  }
  if (name === "Tags")
    return path[2] === undefined ? 'the whole .Tags map cannot be printed; use index .Tags "key"' : 'this tag lookup is not supported; use index .Tags "key"';
  return `.${name} is a string and has no fields`;
}
