import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, rmSync } from "node:fs";

/** A child process whose output goes to a log file, so a failing test can show why. */
export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

export function startProcess(name: string, command: string, args: string[], logFile: string): ManagedProcess {
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  // Once the output is read to its end and on disk: a failed process's log says why (e.g. a port taken).
  const exited = new Promise<number | null>((resolve) => {
    child.on("close", (code) => log.end(() => resolve(code)));
    child.on("error", () => resolve(null));
  });
  return { name, child, logFile, exited };
}

/**
 * SIGTERM; resolves once the process is gone. One still running after `graceMs` is SIGKILLed and
 * this throws: every process a test starts must end on SIGTERM (a test that means to crash one
 * kills it itself, explicitly).
 */
export async function stopProcess(process: ManagedProcess, graceMs = 15_000): Promise<void> {
  if (process.child.exitCode !== null || process.child.signalCode !== null) return;
  process.child.kill("SIGTERM");
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    process.child.kill("SIGKILL");
  }, graceMs);
  await process.exited;
  clearTimeout(timer);
  if (killed) throw new Error(`${process.name} did not end within ${graceMs} ms of SIGTERM and was SIGKILLed; see ${process.logFile}`);
}

/**
 * Cleans up even when the test process dies without running its hooks: a detached shell polls for
 * our pid and, once it is gone, kills the children and removes the directory. On a normal stop it
 * is killed first. Signal handlers cover Ctrl-C, `exit` covers a test that throws at top level.
 */
export class Reaper {
  private readonly pids = new Set<number>();
  private watchdog: ChildProcess | undefined;
  private readonly onExit = () => this.reapSync();
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.reapSync();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };

  /** `signals: false` when the caller stops everything itself on SIGINT/SIGTERM (the demo); `exit` still reaps. */
  constructor(
    private readonly dir: string,
    options: { signals?: boolean } = {},
  ) {
    process.on("exit", this.onExit);
    if (options.signals ?? true) {
      process.once("SIGINT", this.onSignal);
      process.once("SIGTERM", this.onSignal);
    }
  }

  track(managed: ManagedProcess): void {
    if (managed.child.pid) this.pids.add(managed.child.pid);
    void managed.exited.then(() => managed.child.pid && this.pids.delete(managed.child.pid));
    this.restartWatchdog();
  }

  private restartWatchdog(): void {
    this.watchdog?.kill("SIGKILL");
    const pids = [...this.pids].join(" ");
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -TERM ${pids} 2>/dev/null; sleep 3; kill -KILL ${pids} 2>/dev/null; rm -rf '${this.dir}'`;
    this.watchdog = spawn("bash", ["-c", script], { detached: true, stdio: "ignore" });
    this.watchdog.unref();
  }

  /** Called after an orderly stop: nothing left to reap. */
  dispose(): void {
    this.watchdog?.kill("SIGKILL");
    process.off("exit", this.onExit);
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }

  private reapSync(): void {
    for (const pid of this.pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    this.watchdog?.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}
