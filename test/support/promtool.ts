import { spawn } from "node:child_process";
import { promtoolBinary } from "../tools/promtool.js";

/**
 * promtool lint findings that are known and accepted, each for a stated reason; anything else fails.
 * - The Go original's counters predate the `_total` convention and its azurerm_* labels are camelCase:
 *   both are kept so dashboards and alerts keep working after the drop-in switch.
 * - prom-client's default Node.js metrics name three gauges `*_total`; they are the library's.
 */
export const ACCEPTED_FINDINGS: readonly RegExp[] = [
  /^azuremsi_sync_resources_(errors|success) counter metrics should have "_total" suffix$/,
  /^azurerm_api_(request|ratelimit) label names should be written in 'snake_case' not 'camelCase'$/,
  /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/,
];

/** promtool with `args` (and `stdin`), the pinned build (test/tools/promtool.ts); exit code and output lines. */
export async function runPromtool(args: string[], stdin = ""): Promise<{ code: number; output: string[] }> {
  const promtool = await promtoolBinary();
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, args, { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", (error) => reject(new Error(`cannot run ${promtool}: ${error.message}`)));
    child.on("close", (code) =>
      resolve({
        code: code ?? -1,
        output: output
          .split("\n")
          .map((line) => line.trim())
          .filter((line) => line !== ""),
      }),
    );
    child.stdin.end(stdin);
  });
}

/**
 * `promtool check metrics` on an exposition, with the promtool this project pins (test/tools/promtool.ts;
 * built once from the Go module proxy, or TEST_ASSET_PROMTOOL). Exit 1 is a parse error; exit 3 lists
 * lint findings, which are returned so a test can allow exactly the accepted ones.
 */
export async function promtoolCheck(exposition: string): Promise<{ code: number; findings: string[] }> {
  const { code, output } = await runPromtool(["check", "metrics"], exposition);
  return { code, findings: output };
}
