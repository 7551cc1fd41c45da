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

interface PromtoolTests {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

const TESTS_FILE = new URL("./alerts.promtool.yaml", import.meta.url);

describe("PrometheusRule (manifests/monitoring/prometheusrule.yaml) under promtool", () => {
  let dir: string;
  let spec: RuleGroups;
  let tests: PromtoolTests;

  /** `promtool test rules` of the cases against `groups` (descriptions dropped: promtool compares annotations exactly). */
  const testRules = async (groups: RuleGroups) => {
    const withoutDescriptions = structuredClone(groups);
    for (const rule of alertRules(withoutDescriptions)) delete rule.annotations?.description;
    const rulesFile = join(dir, "rules.yaml");
    const testsFile = join(dir, "tests.yaml");
    await writeFile(rulesFile, dumpYaml(withoutDescriptions));
    await writeFile(testsFile, dumpYaml({ ...tests, rule_files: [rulesFile] }));
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
    for (const name of names) {
      const mine = cases.filter((entry) => entry.alertname === name);
      assert.ok(
        mine.some((entry) => (entry.exp_alerts ?? []).length > 0),
        `${name}: no case fires it`,
      );
      assert.ok(
        mine.some((entry) => (entry.exp_alerts ?? []).length === 0),
        `${name}: no case keeps it quiet`,
      );
    }
  });

  test("promtool test rules: every case passes", async () => {
    const { code, output } = await testRules(spec);
    assert.equal(code, 0, output.join("\n"));
    assert.ok(output.includes("SUCCESS"), output.join("\n"));
  });

  test("an alert that never fires fails its firing case; one that always fires fails its quiet case", async () => {
    for (const rule of alertRules(spec)) {
      for (const [expr, what] of [
        ["absent(vector(1))", "never fires"],
        ["vector(1)", "always fires"],
      ] as const) {
        const { code, output } = await testRules(withExpr(rule.alert, expr));
        assert.equal(code, 1, `${rule.alert} replaced by an expression that ${what}: the cases still pass`);
        assert.ok(
          output.some((line) => line.includes(`alertname: ${rule.alert}`)),
          `${rule.alert} (${what}): the failure is not this alert's:\n${output.join("\n")}`,
        );
      }
    }
  });
});
