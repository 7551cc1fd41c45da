#!/usr/bin/env node
// `azure-msi-operator [run|sync|diff|audit|migrate] [flags]`: parse the configuration once, build the
// operator, run it until SIGTERM/SIGINT (graceful), with `sync --once` sync once and exit, with `diff`
// print what a sync would write and exit as kubectl diff does, with `audit` print what violates the
// tags, or with `migrate` print what is left to move off aad-pod-identity.
//
// No top-level await: the single executables (tools/release.ts) run this as CommonJS, which has none.
import { loadConfig } from "./config/cli.js";
import { createOperator } from "./operator.js";

/**
 * How long past --shutdown.delay a shutdown may take before the backstop ends the process. Every
 * wait in a shutdown is bounded or aborted well within this; the backstop exits non-zero and names
 * what was left, so a hang shows as a failure instead of being hidden.
 */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const config = loadConfig();
  let stopping = false;
  // Set below, once the logger exists; a server can only fail to listen after start() began.
  let onFatal: (error: Error) => void = () => undefined;
  const { app, log } = await createOperator(config, process.env, { onFatal: (error) => onFatal(error) }).catch((error: unknown) => {
    process.stderr.write(`azure-msi-operator: ${(error as Error).message}\n`);
    process.exit(2);
  });

  process.on("unhandledRejection", (reason) => {
    log.fatal({ err: reason instanceof Error ? reason.message : String(reason) }, "unhandled rejection");
    process.exit(1);
  });

  // The read-only commands print their report and exit with its code (2 when they fail).
  if (config.command === "diff" || config.command === "audit" || config.command === "migrate") {
    const command = config.command;
    const write = (text: string) => void process.stdout.write(text);
    const report = { diff: () => app.diff(write), audit: () => app.audit(write), migrate: () => app.migrate(write) }[command];
    const code = await report().catch((error: unknown) => {
      log.error({ err: (error as Error).message }, `${command} failed`);
      return 2;
    });
    process.exit(code);
  }

  if (config.command === "sync" && config.once) {
    const summary = await app.syncOnce().catch((error: unknown) => {
      log.error({ err: (error as Error).message }, "sync failed");
      process.exit(1);
    });
    process.exit(summary.result === "success" ? 0 : 1);
  }

  /** Shuts down once, then exits with `code`; past the delay plus SHUTDOWN_GRACE_MS the backstop exits 1. */
  const shutdown = (code: number, delayMs: number): void => {
    if (stopping) return;
    stopping = true;
    const budgetMs = delayMs + SHUTDOWN_GRACE_MS;
    setTimeout(() => {
      log.fatal({ budgetMs, stillRunning: process.getActiveResourcesInfo() }, "shutdown did not finish in time: exiting anyway");
      process.exit(1);
    }, budgetMs);
    // Both outcomes are handled here, and the process exits in either.
    void app.shutdown(delayMs).then(
      () => process.exit(code),
      (error: unknown) => {
        log.error({ err: (error as Error).message }, "shutdown failed");
        process.exit(1);
      },
    );
  };

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      if (stopping) return;
      log.info({ signal }, "signal received");
      shutdown(0, config.shutdown.delayMs);
    });
  }

  // A replica that cannot serve admission is restarted by the kubelet, not left NotReady for good.
  onFatal = (error) => {
    if (stopping) return;
    log.fatal({ err: error.message }, `${error.message}: exiting`);
    shutdown(1, 0);
  };

  await app.start().catch((error: unknown) => {
    // A shutdown aborts a start-up in progress; it decides the exit code.
    if (stopping) return;
    log.fatal({ err: (error as Error).message }, "start-up failed");
    process.exit(1);
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`azure-msi-operator: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
