// The Helm values tables (docs/reference.md, the chart's README), generated from the chart's values.schema.json (descriptions, types)
// and values.yaml (defaults), so the documentation cannot drift from what `helm install` accepts.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadYaml } from "@kubernetes/client-node";

const CHART = fileURLToPath(new URL("../charts/azure-msi-operator/", import.meta.url));

export interface SchemaNode {
  type?: string | string[];
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  enum?: unknown[];
}

const cell = (text: string): string => text.replace(/\|/g, "\\|");
const code = (text: string): string => "`" + cell(text) + "`";

function typeOf(node: SchemaNode): string {
  if (node.enum) return node.enum.map(String).join(" \\| ");
  const types = Array.isArray(node.type) ? node.type : [node.type ?? "any"];
  return types.map((type) => (type === "array" ? `list of ${node.items ? typeOf(node.items) : "any"}` : type)).join(" or ");
}

function defaultOf(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value === "" ? '`""`' : code(value);
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value.length === 0 ? "`[]`" : value.map(code).join(", ");
  const json = JSON.stringify(value);
  return json.length > 80 ? "_see values.yaml_" : code(json);
}

/** One row per schema leaf (objects with properties are walked), in the schema's order. */
export function valuesRows(schema: SchemaNode, values: unknown, path = ""): string[] {
  return Object.entries(schema.properties ?? {}).flatMap(([name, node]) => {
    const key = path ? `${path}.${name}` : name;
    if (key === "global") return [];
    const value = values !== null && typeof values === "object" ? (values as Record<string, unknown>)[name] : undefined;
    if (node.properties) return valuesRows(node, value, key);
    if (!node.description) throw new Error(`values.schema.json: ${key} has no description`);
    return [`| ${code(key)} | ${typeOf(node)} | ${defaultOf(value)} | ${cell(node.description)} |`];
  });
}

export function renderValuesMarkdown(): string {
  const schema = JSON.parse(readFileSync(`${CHART}values.schema.json`, "utf8")) as SchemaNode;
  const values = loadYaml(readFileSync(`${CHART}values.yaml`, "utf8"));
  return ["| value | type | default | description |", "| --- | --- | --- | --- |", ...valuesRows(schema, values)].join("\n") + "\n";
}
