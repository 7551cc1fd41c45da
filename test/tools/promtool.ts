import { goToolBinary, type GoTool, type GoToolOptions } from "./gotool.js";

// Prometheus publishes release 3.MM.P as Go module version v0.3MM.P (see prometheusRelease).
const PROMETHEUS_MODULE_VERSION = "v0.316.0";

/** Prometheus' release number for one of its Go module versions: v0.316.0 is 3.16.0, v0.305.2 is 3.5.2. */
export function prometheusRelease(moduleVersion: string): string {
  const parts = /^v0\.(\d)(\d\d)\.(\d+)$/.exec(moduleVersion);
  if (!parts) throw new Error(`${moduleVersion} is not a Prometheus module version of the form v0.3MM.P`);
  const [, major, minor, patch] = parts;
  return `${major}.${Number(minor)}.${patch}`;
}

/** `promtool check metrics` lints the operator's /metrics exposition in test/support/promtool.ts. */
export const PROMTOOL: GoTool = {
  name: "promtool",
  module: "github.com/prometheus/prometheus",
  version: PROMETHEUS_MODULE_VERSION,
  package: "./cmd/promtool",
  // What Prometheus' own release build (.promu.yml) stamps, so `promtool --version` names the release.
  stamp: { "github.com/prometheus/common/version.Version": prometheusRelease(PROMETHEUS_MODULE_VERSION) },
  override: "TEST_ASSET_PROMTOOL",
};

/** TEST_ASSET_PROMTOOL, else the pinned promtool from the cache (built on first use). */
export function promtoolBinary(options?: GoToolOptions): Promise<string> {
  return goToolBinary(PROMTOOL, options);
}
