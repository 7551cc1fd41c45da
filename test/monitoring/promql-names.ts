// The metric names a PromQL expression selects, to check dashboards and alerts against a live /metrics.
// A small scanner rather than a parser: it removes what cannot be a metric name (strings, label
// matchers, ranges, label lists of by/without/on/ignoring/group_*), then takes each identifier that is
// not a keyword and not a function call. Its test pins the cases the shipped queries use.

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "atan2", "inf", "nan"]);

export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/#[^\n]*/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    // Grafana's variables outside matchers and ranges ($__range, ${namespace}).
    .replace(/\$\{[^}]*\}|\$\w+/g, " ");
  const names = new Set<string>();
  // Not preceded by a word character, a dot or a colon: 1e3, 5m and 0.5 are no names.
  for (const match of stripped.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*/g)) {
    const name = match[0];
    const after = stripped.slice(match.index + name.length);
    if (KEYWORDS.has(name.toLowerCase()) || /^\s*\(/.test(after)) continue;
    names.add(name);
  }
  return [...names];
}

/** Metric names a Grafana template variable's query reads: label_values(metric, label) or a PromQL query. */
export function variableMetricNames(query: string): string[] {
  const labelValues = /^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*(?:\{[^}]*\})?\s*,/.exec(query);
  if (labelValues) return [labelValues[1] as string];
  const queryResult = /^\s*query_result\((.*)\)\s*$/s.exec(query);
  return metricNames(queryResult ? (queryResult[1] as string) : query);
}

/**
 * The series names a /metrics exposition offers to queries, from its `# TYPE` lines (a family is
 * exported even before its first sample): counters and gauges by name, histograms and summaries by
 * their _bucket, _sum and _count series (a bare histogram name selects nothing).
 */
export function exportedSeriesNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (!name) continue;
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    else if (type === "summary") for (const suffix of ["", "_sum", "_count"]) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}
