import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { operatorBundle } from "./operator-bundle.js";

// tsc's output, for measuring against the bundle (bench:sync --compiled).
const COMPILED_MAIN = fileURLToPath(new URL("../../dist/src/main.js", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface ProcessOptions {
  kubeconfig: string;
  env: Record<string, string>;
  flags: string[];
  /** Run the compiled dist/src/main.js (after `npm run build`) instead of the bundle the image ships. */
  compiled?: boolean;
  /** Another entry point instead (e.g. a bundle built with other options). */
  main?: string;
}

/**
 * `azure-msi-operator` as a real child process (node --unhandled-rejections=strict), by default from
 * the bundle the image ships (tools/bundle.ts, built and cached by test/support/operator-bundle.ts)
 * with no node_modules in reach, on the Node that runs the tests; JSON logs parsed as they come, its
 * ops server on a port it bound itself (:0, read from its "ops serving" line), killable with any signal.
 */
export class OperatorProcess {
  readonly logs: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The ops server's port, once the process has said it listens. */
  readonly opsListening: Promise<number>;
  private listeners: (() => void)[] = [];
  private boundOpsPort: number | undefined;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    let buffer = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.logs.push({ ...(JSON.parse(line) as Record<string, unknown>), receivedAt: Date.now() });
        } catch {
          this.stderr.push(line);
        }
      }
      for (const listener of this.listeners) listener();
    });
    child.stderr?.on("data", (chunk: Buffer) => this.stderr.push(chunk.toString()));
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    this.opsListening = new Promise<number>((resolve, reject) => {
      const check = () => {
        const line = this.logs.find((candidate) => candidate.msg === "ops serving");
        if (!line) return;
        this.listeners = this.listeners.filter((listener) => listener !== check);
        resolve((this.boundOpsPort = Number(line.port)));
      };
      this.listeners.push(check);
      void this.exited.then(({ code, signal }) => {
        this.listeners = this.listeners.filter((listener) => listener !== check);
        reject(new Error(`${name} exited (${signal ?? code}) before its ops server listened; stderr: ${this.stderr.join("").slice(-2000)}`));
      });
    });
    // A one-shot command never serves; only callers of get()/opsPort care.
    this.opsListening.catch(() => undefined);
  }

  /** The ops server's port; known once `opsListening` has resolved. */
  get opsPort(): number {
    if (this.boundOpsPort === undefined) throw new Error(`${this.name}: ops server not listening yet (await opsListening)`);
    return this.boundOpsPort;
  }

  static async start(name: string, options: ProcessOptions): Promise<OperatorProcess> {
    const main = options.main ?? (options.compiled ? COMPILED_MAIN : await operatorBundle());
    const child = spawn(
      process.execPath,
      ["--unhandled-rejections=strict", main, "--log.json", `--kubeconfig=${options.kubeconfig}`, "--server.bind=127.0.0.1:0", ...options.flags],
      { cwd: ROOT, env: { ...process.env, ...options.env, INSTANCE_POD: name }, stdio: ["ignore", "pipe", "pipe"] },
    );
    return new OperatorProcess(name, child);
  }

  /** Resolves with the first log line (from now or earlier) that `match` accepts. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.logs.find(match);
        if (!found) return false;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((listener) => listener !== check);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((listener) => listener !== check);
        reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms; stderr: ${this.stderr.join("").slice(-2000)}`));
      }, timeoutMs);
      if (!check()) this.listeners.push(check);
    });
  }

  /** The webhook server's port (started with --webhook.bind=…:0), once it serves. */
  async webhookPort(timeoutMs = 40_000): Promise<number> {
    return Number((await this.waitForLog((line) => line.msg === "webhook serving", timeoutMs)).port);
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const port = await this.opsListening;
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path, timeout: 2_000 }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end();
    });
  }

  async ready(): Promise<boolean> {
    return (await this.get("/readyz").catch(() => ({ status: 0 }))).status === 200;
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /**
   * SIGTERM, and the process must end by itself within `graceMs` (its --shutdown.delay plus 10 s is
   * the product's promise; the default covers the shipped 5 s delay with room to spare). One that does not is
   * SIGKILLed and this throws: a process that ignores SIGTERM is a failure, not a detail to clean up.
   * How it exited is in `exited`.
   */
  async stop(graceMs = 20_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.child.kill("SIGKILL");
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
    if (killed) {
      const tail = this.logs
        .slice(-5)
        .map((line) => String(line.msg))
        .join(" | ");
      throw new Error(`${this.name} did not end within ${graceMs} ms of SIGTERM and was SIGKILLed; last log lines: ${tail}`);
    }
  }
}

/** Stops every process (SIGTERM, all at once), then throws if any of them needed SIGKILL. */
export async function stopAll(processes: readonly OperatorProcess[]): Promise<void> {
  const results = await Promise.allSettled(processes.map((proc) => proc.stop()));
  const failures = results.flatMap((result) => (result.status === "rejected" ? [result.reason as Error] : []));
  const [first, ...more] = failures;
  if (first && more.length === 0) throw first;
  if (first) throw new AggregateError(failures, failures.map((failure) => failure.message).join("; "));
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `azure-msi-operator <args>` as a one-shot child process (e.g. `diff`, `sync --once`) of the shipped bundle: exit code and both streams. */
export async function runCommand(args: string[], env: Record<string, string>): Promise<ProcessResult> {
  const main = await operatorBundle();
  return runProcess(process.execPath, ["--unhandled-rejections=strict", main, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
}

/** A child process run to its end: exit code and both streams, whatever the code. */
export function runProcess(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
