import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { exportedSeriesNames, metricNames, variableMetricNames } from "./promql-names.js";

describe("metric names in PromQL", () => {
  test("selectors, aggregations, label lists, matchers, ranges and numbers", () => {
    assert.deepEqual(metricNames('sum by (namespace, le) (rate(azuremsi_admission_duration_seconds_bucket{result!="error", webhook=~"a|b"}[5m] offset 1h))'), [
      "azuremsi_admission_duration_seconds_bucket",
    ]);
    assert.deepEqual(metricNames("max by (namespace) (azuremsi_leader) < 1 or absent(azuremsi_leader)"), ["azuremsi_leader"]);
    assert.deepEqual(
      metricNames(
        "time() - max by (namespace) ((x_seconds > 0) or (process_start_time_seconds and (azuremsi_leader == 1))) > 2 * max by (namespace) (y_seconds)",
      ),
      ["x_seconds", "process_start_time_seconds", "azuremsi_leader", "y_seconds"],
    );
    assert.deepEqual(metricNames("a and ignoring (outcome) b * on (pod) group_left (node) c unless d"), ["a", "b", "c", "d"]);
    assert.deepEqual(metricNames("14 * 86400 + 1e3 - 0.5 + Inf"), []);
    assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le) (rate(foo_bucket{ns="${namespace}"}[$__rate_interval])))'), ["foo_bucket"]);
    assert.deepEqual(metricNames('label_replace(up, "x", "$1", "job", "(.*)") # a comment naming not_a_metric'), ["up"]);
    assert.deepEqual(metricNames("sum without (pod) (rate(a:recorded:rate5m[1m:10s]))"), ["a:recorded:rate5m"]);
  });

  test("Grafana variable queries", () => {
    assert.deepEqual(variableMetricNames("label_values(azuremsi_leader, namespace)"), ["azuremsi_leader"]);
    assert.deepEqual(variableMetricNames('label_values(azuremsi_leader{job="x"}, pod)'), ["azuremsi_leader"]);
    assert.deepEqual(variableMetricNames("query_result(max by (pod) (azuremsi_leader))"), ["azuremsi_leader"]);
  });

  test("an exposition's series names: histograms only by _bucket, _sum and _count", () => {
    const exposition = [
      "# HELP h_seconds latency",
      "# TYPE h_seconds histogram",
      "# HELP c_total things",
      "# TYPE c_total counter",
      "c_total 3",
      "# TYPE g gauge",
    ].join("\n");
    assert.deepEqual([...exportedSeriesNames(exposition)].sort(), ["c_total", "g", "h_seconds_bucket", "h_seconds_count", "h_seconds_sum"]);
  });
});
