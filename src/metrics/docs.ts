// The metrics table of docs/reference.md, rendered from a live registry so the documentation cannot drift.
import type { MetricObject } from "prom-client";
import { Metrics } from "./metrics.js";

// prom-client keeps label names on every metric but does not declare them on MetricObject.
type Documented = MetricObject & { labelNames?: readonly string[] };

const cell = (text: string): string => text.replace(/\|/g, "\\|");

/** One row per metric this operator defines (Node's default process metrics are left out). */
export function renderMetricsMarkdown(): string {
  const metrics = new Metrics({ defaultMetrics: false });
  const lines = ["| metric | type | labels | description |", "| --- | --- | --- | --- |"];
  for (const metric of metrics.registry.getMetricsAsArray() as Documented[]) {
    const labels = (metric.labelNames ?? []).map((label) => `\`${label}\``).join(", ");
    lines.push(`| \`${metric.name}\` | ${metric.type} | ${labels} | ${cell(metric.help)} |`);
  }
  return lines.join("\n") + "\n";
}
