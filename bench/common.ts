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

/**
 * Where a process's resident memory is, in MiB: file-backed pages (the node binary's code and
 * data, ICU) from /proc/<pid>/smaps_rollup; of the anonymous rest, V8's heap and the memory
 * Buffers hold (external) from the process's own Prometheus default metrics; what remains is
 * other native memory (malloc: V8's compiler zones, OpenSSL, libuv, glibc's arenas).
 */
export async function memoryBreakdown(pid: number, metricsText: string): Promise<Record<string, number>> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(rollup)?.[1] ?? 0);
  const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+]+)`, "m").exec(metricsText)?.[1] ?? NaN) / 2 ** 20;
  const mib = (value: number) => Math.round(value * 10) / 10;
  const anon = kib("Anonymous") / 1024;
  const heapCommitted = metric("nodejs_heap_size_total_bytes");
  const external = metric("nodejs_external_memory_bytes");
  return {
    rssMiB: mib(kib("Rss") / 1024),
    fileBackedMiB: mib((kib("Rss") - kib("Anonymous")) / 1024),
    anonymousMiB: mib(anon),
    v8HeapCommittedMiB: mib(heapCommitted),
    v8HeapUsedMiB: mib(metric("nodejs_heap_size_used_bytes")),
    externalMiB: mib(external),
    otherNativeMiB: mib(anon - heapCommitted - external),
  };
}
