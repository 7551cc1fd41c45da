import { cpus, totalmem } from "node:os";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The machine line every figure in BENCHMARKS.md carries. */
export function machine(): string {
  return `${cpus().length} cores (${cpus()[0]?.model.trim() ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function flag(name: string, fallback: number): number {
  const arg = process.argv.find((value) => value.startsWith(`--${name}=`));
  return arg ? Number(arg.split("=")[1]) : fallback;
}

/** Samples a process's resident set (VmRSS) until stopped; returns the peak in MiB. */
export function rssSampler(pid: number, everyMs = 100): { stop: () => number } {
  let peak = 0;
  const timer = setInterval(() => {
    void readFile(`/proc/${pid}/status`, "utf8")
      .then((status) => {
        const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        peak = Math.max(peak, kib / 1024);
      })
      .catch(() => undefined);
  }, everyMs);
  return { stop: () => (clearInterval(timer), peak) };
}

export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await fn(items[index]!, index);
      }
    }),
  );
  return results;
}

/**
 * Child processes started with process.execPath (test/support/process.ts) get `flags` on their node
 * command line: execPath becomes a script that execs this node with them (same pid, so RSS sampling
 * still sees the operator). For V8 flags that NODE_OPTIONS refuses.
 */
export function useNodeFlags(flags: string): void {
  const dir = mkdtempSync(join(tmpdir(), "bench-node-"));
  const script = join(dir, "node");
  writeFileSync(script, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${flags} "$@"\n`);
  chmodSync(script, 0o755);
  process.execPath = script;
}
