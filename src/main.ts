#!/usr/bin/env node
// `azure-msi-operator [run|sync|diff|audit] [flags]`: parse the configuration once, build the operator,
// run it until SIGTERM/SIGINT (graceful), with `sync --once` sync once and exit, with `diff` print
// what a sync would write and exit as kubectl diff does, or with `audit` print what violates the tags.
import { loadConfig } from "./config/cli.js";
import { createOperator } from "./operator.js";

const config = loadConfig();
const { app, log } = await createOperator(config, process.env).catch((error: unknown) => {
  process.stderr.write(`azure-msi-operator: ${(error as Error).message}\n`);
  process.exit(2);
});

process.on("unhandledRejection", (reason) => {
  log.fatal({ err: reason instanceof Error ? reason.message : String(reason) }, "unhandled rejection");
  process.exit(1);
});

if (config.command === "diff" || config.command === "audit") {
  const command = config.command;
  const write = (text: string) => process.stdout.write(text);
  const code = await (command === "diff" ? app.diff(write) : app.audit(write)).catch((error: unknown) => {
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

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "signal received");
    // Both outcomes are handled here, and the process exits in either.
    void app.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: (error as Error).message }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}

await app.start().catch((error: unknown) => {
  log.fatal({ err: (error as Error).message }, "start-up failed");
  process.exit(1);
});
