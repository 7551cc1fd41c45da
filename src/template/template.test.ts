import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { compileTemplate, TEMPLATE_FIELDS, type CompiledTemplate, type TemplateFields } from "./template.js";

const FLAG = "--azureidentity.template.resourcename";

const msi: TemplateFields = {
  Id: "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/My-Msi",
  Name: "My-Msi",
  Location: "westeurope",
  ResourceGroup: "RG",
  SubscriptionId: "s1",
  ClientId: "0b0c1d2e-0000-4000-8000-000000000001",
  TenantId: "t1",
  PrincipalID: "p1",
  Tags: { k8snamespace: "team-a, Team-B", "k8s-namespace": "dashed", owner: "ops" },
  Type: "Microsoft.ManagedIdentity/userAssignedIdentities",
};

function compile(source: string): CompiledTemplate {
  const result = compileTemplate(source, FLAG);
  assert.ok(result.ok, result.ok ? "" : result.error);
  return result.template;
}

const render = (source: string, fields: TemplateFields = msi): string => compile(source).render(fields);

function failure(source: string): string {
  const result = compileTemplate(source, FLAG);
  assert.ok(!result.ok, `expected ${JSON.stringify(source)} to be rejected`);
  assert.ok(result.error.includes(FLAG), result.error);
  assert.ok(!result.error.includes("\n"), "one line");
  assert.ok(result.error.endsWith(result.reason));
  return result.error;
}

test("the Go operator's defaults render name-clientid and the namespace tag", () => {
  assert.equal(render("{{ .Name }}-{{ .ClientId }}"), "My-Msi-0b0c1d2e-0000-4000-8000-000000000001");
  assert.equal(render('{{index .Tags "k8snamespace"}}'), "team-a, Team-B");
  assert.equal(compile("{{ .Name }}-{{ .ClientId }}").dialect, "go");
});

test("simple Go forms are translated to Liquid, with the text around them", () => {
  const cases: Array<[string, string, string]> = [
    ["{{.ClientId}}", "{{ ClientId }}", msi.ClientId],
    ["id-{{ .Name }}-{{ .ClientId }}", "id-{{ Name }}-{{ ClientId }}", `id-My-Msi-${msi.ClientId}`],
    ['{{ index .Tags "k8snamespace" }}', '{{ Tags["k8snamespace"] }}', "team-a, Team-B"],
    ['{{index  .Tags  "k8s-namespace"}}', '{{ Tags["k8s-namespace"] }}', "dashed"],
    ["{{ index .Tags `owner` }}", '{{ Tags["owner"] }}', "ops"],
    ["{{ .Tags.owner }}", '{{ Tags["owner"] }}', "ops"],
    [
      "{{ .ResourceGroup }}/{{ .SubscriptionId }}/{{ .Location }}/{{ .TenantId }}/{{ .PrincipalID }}",
      "{{ ResourceGroup }}/{{ SubscriptionId }}/{{ Location }}/{{ TenantId }}/{{ PrincipalID }}",
      "RG/s1/westeurope/t1/p1",
    ],
    ["{{ .Id }} {{ .Type }}", "{{ Id }} {{ Type }}", `${msi.Id} ${msi.Type}`],
    ["a  {{- .Name -}}  b", "a  {{- Name -}}  b", "aMy-Msib"],
    ["}} {{ .Name }}}", "}} {{ Name }}}", "}} My-Msi}"],
  ];
  for (const [source, liquid, rendered] of cases) {
    const template = compile(source);
    assert.equal(template.liquid, liquid, source);
    assert.equal(template.render(msi), rendered, source);
  }
});

test("a missing tag renders empty, as Go's index on a map", () => {
  assert.equal(render('ns-{{ index .Tags "nope" }}'), "ns-");
  assert.equal(render("{{ .Tags.nope }}"), "");
  assert.equal(render('{{ index .Tags "constructor" }}{{ index .Tags "__proto__" }}'), "");
  assert.equal(render('{{index .Tags "k8snamespace"}}', { ...msi, Tags: {} }), "");
});

test("Liquid templates are used as they are; unknown variables render empty", () => {
  const template = compile("{{ Name | downcase }}-{{ ClientId | slice: 0, 8 }}");
  assert.equal(template.dialect, "liquid");
  assert.equal(template.render(msi), "my-msi-0b0c1d2e");
  assert.equal(render('{{ Tags.k8snamespace | split: "," | first }}'), "team-a");
  assert.equal(render('{{ Tags["k8s-namespace"] | upcase }}'), "DASHED");
  assert.equal(render("{% if Tags.owner %}{{ Tags.owner }}{% else %}none{% endif %}"), "ops");
  assert.equal(render("{{ Nope }}x{{ Tags.nope.deeper }}"), "x");
  assert.equal(render("static-name"), "static-name");
  // A dot inside a Liquid string is not Go syntax.
  assert.equal(render('{{ Name | append: " .x" }}'), "My-Msi .x");
});

test("Go-only syntax is a start-up error that names the flag and what is unsupported", () => {
  const cases: Array<[string, RegExp]> = [
    ["{{ .Name | lower }}", /pipelines \(\|\) are not supported/],
    ['{{ printf "%s-%s" .Name .ClientId }}', /functions such as printf are not supported/],
    ["{{ if .Tags }}x{{ end }}", /"if" actions are not supported/],
    ["{{ range .Tags }}x{{ end }}", /"range" actions are not supported/],
    ["{{ $x := .Name }}{{ $x }}", /variables \(\$\) are not supported/],
    ["{{ .Nope }}", /unknown field \.Nope; fields: Id, Name/],
    ["{{ .ClientID }}", /unknown field \.ClientID \(did you mean \.ClientId\?\)/],
    ["{{ .Tags }}", /the whole \.Tags map cannot be printed/],
    ["{{ .Name.First }}", /\.Name is a string and has no fields/],
    ['{{ index .Other "k" }}', /index is supported only as index \.Tags "key"/],
    ['{{ index .Tags "a\\"b" }}', /index is supported only as/],
    ["{{ (.Name) }}", /parentheses are not supported/],
    ["{{ .Name .ClientId }}", /only a single field or tag lookup/],
    ["{{/* comment */}}", /comments are not supported/],
    ["{{ .Name }}{% if Tags.x %}y{% endif %}", /Liquid tags \(\{% %\}\) cannot be mixed with Go template actions/],
    ["{{ .Name }}-{{ Name | downcase }}", /unsupported Go template action \{\{ Name \| downcase \}\}/],
  ];
  for (const [source, reason] of cases) {
    const error = failure(source);
    assert.match(error, reason, source);
    assert.ok(error.startsWith(`invalid value ${JSON.stringify(source)} for ${FLAG}: `), error);
  }
});

test("Liquid errors are start-up errors too: unknown filters, bad syntax, file access", () => {
  assert.match(failure("{{ Name | nosuchfilter }}"), /not a valid Liquid template: undefined filter: nosuchfilter/);
  assert.match(failure("{{ Name"), /not a valid Liquid template/);
  assert.match(failure("{% if Name %}x"), /not a valid Liquid template/);
  assert.match(failure("{% nosuchtag %}"), /not a valid Liquid template/);
  assert.match(failure('{% include "secrets" %}'), /"include" tag is not available/);
  assert.match(failure('{% render "secrets" %}'), /"render" tag is not available/);
  assert.match(failure('{% layout "secrets" %}'), /"layout" tag is not available/);
});

test("rendering is pure: tags that write variables do not change the fields or the next render", () => {
  const template = compile("{% increment Id %}{% assign Name = 'x' %}{{ Name }}");
  const fields = { ...msi, Id: "7" };
  const first = template.render(fields);
  assert.match(first, /x$/);
  assert.equal(template.render(fields), first);
  assert.equal(fields.Id, "7");
  assert.equal(fields.Name, "My-Msi");
});

test("the field list is the Go operator's", () => {
  assert.deepEqual([...TEMPLATE_FIELDS], ["Id", "Name", "Location", "ResourceGroup", "SubscriptionId", "ClientId", "TenantId", "PrincipalID", "Tags", "Type"]);
});

// --- property: translated Go forms render exactly as Go would render those forms ---

type Part =
  | { kind: "text"; text: string }
  | { kind: "field"; field: string; spelling: number; trimLeft: boolean; trimRight: boolean }
  | { kind: "tag"; key: string; spelling: number; trimLeft: boolean; trimRight: boolean };

const STRING_FIELDS = TEMPLATE_FIELDS.filter((field) => field !== "Tags");
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SPACE = fc.constantFrom("", " ", "  ", "\t", "\n");
// No "{" in text: in Go it could start an action, and "{%" is refused as mixed-in Liquid.
const text = fc.string({ unit: fc.constantFrom("a", "Z", "-", ".", " ", "\n", "\t", "}", "%", "|", "'", '"', "é", "$"), maxLength: 6 });
const tagKey = fc.oneof(
  fc.constantFrom("k8snamespace", "owner", "missing", "k8s-namespace", "a b", "constructor"),
  fc.string({ maxLength: 8 }).filter((k) => !/["\\`]/.test(k)),
);

const partArbitrary: fc.Arbitrary<Part> = fc.oneof(
  text.map((t): Part => ({ kind: "text", text: t })),
  fc.record({
    kind: fc.constant("field" as const),
    field: fc.constantFrom(...STRING_FIELDS),
    spelling: fc.nat(),
    trimLeft: fc.boolean(),
    trimRight: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("tag" as const), key: tagKey, spelling: fc.nat(), trimLeft: fc.boolean(), trimRight: fc.boolean() }),
);

/** Writes a part in one of the Go spellings users have. */
function goSource(part: Part, pad: readonly string[]): string {
  if (part.kind === "text") return part.text;
  const [a, b] = [pad[part.spelling % pad.length] ?? "", pad[(part.spelling + 1) % pad.length] ?? ""];
  const open = part.trimLeft ? "{{- " : `{{${a}`;
  const close = part.trimRight ? " -}}" : `${b}}}`;
  if (part.kind === "field") return `${open}.${part.field}${close}`;
  const forms = [`index .Tags "${part.key}"`, `index .Tags \`${part.key}\``, `index${a || " "}.Tags${b || " "}"${part.key}"`];
  if (IDENT.test(part.key)) forms.push(`.Tags.${part.key}`);
  return `${open}${forms[part.spelling % forms.length]}${close}`;
}

/** What Go's text/template prints for these forms (index on a missing key: the zero value ""). */
function goReference(parts: readonly Part[], fields: TemplateFields): string {
  // Go trims white space (space, tab, CR, LF) next to "{{- " and " -}}".
  const pieces = parts.map((part) =>
    part.kind === "text"
      ? part.text
      : part.kind === "field"
        ? (fields[part.field as keyof TemplateFields] as string)
        : Object.hasOwn(fields.Tags, part.key)
          ? fields.Tags[part.key]!
          : "",
  );
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.kind === "text") continue;
    // Trimming reaches only literal text: a value is never trimmed, and runs of text merge first.
    if (part.trimLeft)
      for (let j = i - 1; j >= 0 && parts[j]!.kind === "text"; j--) {
        pieces[j] = pieces[j]!.replace(/[ \t\r\n]+$/, "");
        if (pieces[j] !== "") break;
      }
    if (part.trimRight)
      for (let j = i + 1; j < parts.length && parts[j]!.kind === "text"; j++) {
        pieces[j] = pieces[j]!.replace(/^[ \t\r\n]+/, "");
        if (pieces[j] !== "") break;
      }
  }
  return pieces.join("");
}

test("property: translated Go templates render what Go renders", () => {
  const value = fc.string({ maxLength: 10 });
  const fieldsArbitrary = fc.record({
    Id: value,
    Name: value,
    Location: value,
    ResourceGroup: value,
    SubscriptionId: value,
    ClientId: value,
    TenantId: value,
    PrincipalID: value,
    Type: value,
    Tags: fc.array(fc.tuple(tagKey, value), { maxLength: 4 }).map((entries) => Object.fromEntries(entries)),
  });
  fc.assert(
    fc.property(
      fc.array(partArbitrary, { minLength: 1, maxLength: 6 }),
      fc.array(SPACE, { minLength: 1, maxLength: 3 }),
      fieldsArbitrary,
      (parts, pad, fields) => {
        fc.pre(parts.some((part) => part.kind !== "text"));
        const source = parts.map((part) => goSource(part, pad)).join("");
        const result = compileTemplate(source, FLAG);
        assert.ok(result.ok, `${JSON.stringify(source)}: ${result.ok ? "" : result.error}`);
        assert.equal(result.template.dialect, "go");
        assert.equal(result.template.render(fields), goReference(parts, fields), JSON.stringify(source));
      },
    ),
    { numRuns: 1000 },
  );
});

test("the tag keys a template reads are known, so a denial can name the tag to set", () => {
  assert.deepEqual(compile('{{index .Tags "k8snamespace"}}').tags, ["k8snamespace"]);
  assert.deepEqual(compile('{{ .Tags.team }},{{ index .Tags "k8s-namespace" }}').tags, ["team", "k8s-namespace"]);
  assert.deepEqual(compile('{{ Tags["k8s-ns"] | downcase }}{% assign t = Tags.owner %}{{ t }}{{ Tags["k8s-ns"] }}').tags, ["k8s-ns", "owner"]);
  assert.deepEqual(compile("{{ Name }}").tags, []);
});
