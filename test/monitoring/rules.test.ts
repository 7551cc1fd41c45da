// The shipped PrometheusRule under the pinned promtool: `check rules` on its spec, and `test rules` with
// test/monitoring/alerts.promtool.yaml, where every alert has a case that fires it and one that keeps
// it quiet. Replacing an alert's expression with one that never (or always) fires must break a case,
// so neither kind of case passes by accident.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dumpYaml, loadYaml } from "@kubernetes/client-node";
import { runPromtool } from "../support/promtool.js";
import { alertRules, loadPrometheusRule, type RuleGroups } from "./rules.js";

interface AlertCase {
  alertname: string;
  exp_alerts?: unknown[];
}
interface PromtoolTests {
  rule_files: string[];
  tests: { name: string; input_series: { series: string; values: unknown }[]; alert_rule_test?: AlertCase[] }[];
}

const fires = (entry: AlertCase) => (entry.exp_alerts ?? []).length > 0;

const TESTS_FILE = new URL("./alerts.promtool.yaml", import.meta.url);

describe("PrometheusRule (manifests/monitoring/prometheusrule.yaml) under promtool", () => {
  let dir: string;
  let spec: RuleGroups;
  let tests: PromtoolTests;

  /**
   * `promtool test rules` of the cases (those `only` keeps) against `groups`; descriptions are dropped,
   * as promtool compares annotations exactly.
   */
  const testRules = async (groups: RuleGroups, only: (entry: AlertCase) => boolean = () => true) => {
    const withoutDescriptions = structuredClone(groups);
    for (const rule of alertRules(withoutDescriptions)) delete rule.annotations?.description;
    const rulesFile = join(dir, "rules.yaml");
    const testsFile = join(dir, "tests.yaml");
    await writeFile(rulesFile, dumpYaml(withoutDescriptions));
    const cases = tests.tests
      .map((group) => ({ ...group, alert_rule_test: (group.alert_rule_test ?? []).filter(only) }))
      .filter((group) => group.alert_rule_test.length > 0);
    await writeFile(testsFile, dumpYaml({ ...tests, rule_files: [rulesFile], tests: cases }));
    return runPromtool(["test", "rules", testsFile]);
  };

  /** The spec with one alert's expression replaced. */
  const withExpr = (alert: string, expr: string): RuleGroups => {
    const changed = structuredClone(spec);
    const rule = alertRules(changed).find((candidate) => candidate.alert === alert);
    assert.ok(rule, alert);
    rule.expr = expr;
    return changed;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "azure-msi-operator-rules-"));
    spec = (await loadPrometheusRule()).spec;
    tests = loadYaml<PromtoolTests>(await readFile(TESTS_FILE, "utf8"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("every alert has a severity, a summary and a static runbook description", () => {
    const rules = alertRules(spec);
    assert.ok(rules.length >= 8, `${rules.length} alerts`);
    for (const rule of rules) {
      assert.match(rule.labels?.severity ?? "", /^(critical|warning)$/, `${rule.alert}: severity`);
      assert.ok((rule.annotations?.summary ?? "").length > 10, `${rule.alert}: summary`);
      const description = rule.annotations?.description ?? "";
      assert.ok(description.length > 100, `${rule.alert}: a description that says what to check`);
      // Dropped before `promtool test rules`, so it must not be a template whose output a case would check.
      assert.doesNotMatch(description, /\{\{/, `${rule.alert}: description is static`);
    }
  });

  test("promtool check rules accepts the spec, descriptions and all", async () => {
    const file = join(dir, "full.yaml");
    await writeFile(file, dumpYaml(spec));
    const { code, output } = await runPromtool(["check", "rules", file]);
    assert.equal(code, 0, output.join("\n"));
    assert.ok(
      output.some((line) => new RegExp(`SUCCESS: ${alertRules(spec).length} rules found`).test(line)),
      output.join("\n"),
    );
  });

  test("each alert has a case that fires it and one that keeps it quiet, and no case names an unknown alert", () => {
    const names = new Set(alertRules(spec).map((rule) => rule.alert));
    const cases = tests.tests.flatMap((group) => group.alert_rule_test ?? []);
    for (const entry of cases) assert.ok(names.has(entry.alertname), `a case for unknown alert ${entry.alertname}`);
    // YAML reads an unquoted 0x10 as the number 16: series values must be quoted strings.
    for (const group of tests.tests)
      for (const input of group.input_series) assert.equal(typeof input.values, "string", `${group.name}: ${input.series} values must be quoted`);
    for (const name of names) {
      const mine = cases.filter((entry) => entry.alertname === name);
      assert.ok(mine.some(fires), `${name}: no case fires it`);
      assert.ok(
        mine.some((entry) => !fires(entry)),
        `${name}: no case keeps it quiet`,
      );
    }
  });

  test("promtool test rules: every case passes", async () => {
    const { code, output } = await testRules(spec);
    assert.equal(code, 0, output.join("\n"));
    assert.ok(output.includes("SUCCESS"), output.join("\n"));
  });

  test("an alert that never fires fails its firing cases; one that always fires fails its quiet cases", async () => {
    for (const rule of alertRules(spec)) {
      for (const [expr, what, kind] of [
        ["absent(vector(1))", "never fires", (entry: AlertCase) => entry.alertname === rule.alert && fires(entry)],
        ["vector(1)", "always fires", (entry: AlertCase) => entry.alertname === rule.alert && !fires(entry)],
      ] as const) {
        const unchanged = await testRules(spec, kind);
        assert.equal(unchanged.code, 0, unchanged.output.join("\n"));
        const { code, output } = await testRules(withExpr(rule.alert, expr), kind);
        assert.equal(code, 1, `${rule.alert} replaced by an expression that ${what}: its cases still pass`);
        assert.ok(
          output.some((line) => line.includes(`alertname: ${rule.alert}`)),
          `${rule.alert} (${what}): the failure is not this alert's:\n${output.join("\n")}`,
        );
      }
    }
  });
});
