// `npm run demo [-- --once]`: the operator against a local control plane and an Azure fake, with a
// walk-through of what it does. Stays up for kubectl until Ctrl-C (or exits after the walk-through
// with --once); either way everything it started is stopped and its temp dirs are removed.
// Run through test/support/with-test-ca.ts so every process trusts the fake's certificate.
import { DemoEnvironment } from "./environment.js";
import { indent, seconds } from "./print.js";
import { walkThrough } from "./steps.js";
import { StopRequest } from "./stop.js";

const CLEANUP_TIMEOUT_MS = 60_000;

const once = process.argv.slice(2).includes("--once");
const print = (text: string) => process.stdout.write(`${text}\n`);
const stop = new StopRequest();
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => stop.request(signal));

const env = new DemoEnvironment(print, stop);
const started = Date.now();
let exitCode = 0;

print("azure-msi-operator demo: a local kube-apiserver, a fake Azure, and the real operator\n");
try {
  await env.start();
  await walkThrough({ env, print, stop });
  print(`\nSet up and walked through in ${seconds(Date.now() - started)}.`);
  if (!once) {
    printHowToUse();
    await stop.requested;
  }
} catch (error) {
  // A Ctrl-C that interrupts a step (or kills its kubectl) is a stop, not a failure.
  if (!stop.signal) {
    exitCode = 1;
    print(`\nFAILED: ${(error as Error).message}`);
    const tail = env.operatorTail();
    if (tail.length > 0) print(`The operator's last log lines:\n${indent(tail.join("\n"), "    ")}`);
  }
}

print(`\n${stop.signal ? `${stop.signal}: s` : "S"}topping and cleaning up:`);
const stopping = Date.now();
setTimeout(() => {
  print(`cleanup took longer than ${CLEANUP_TIMEOUT_MS / 1000} s; exiting (leftover processes are killed on exit)`);
  process.exit(1);
}, CLEANUP_TIMEOUT_MS).unref();
await env.stopAll();
print(`${exitCode === 0 ? "Done" : "Done (failed)"} in ${seconds(Date.now() - stopping)}.`);
process.exit(exitCode);

function printHowToUse(): void {
  const plane = env.plane;
  if (!plane) return;
  const commands: [string, string][] = [
    [`export KUBECONFIG=${plane.kubeconfigPath("admin")}`, "as admin (system:masters), or"],
    [`export KUBECONFIG=${plane.kubeconfigPath("jane")}`, "as jane (group dev-team)"],
    [`alias kubectl=${plane.assets.kubectl}`, "optional: the kubectl built with this API server"],
    ["kubectl get azureidentities,azureidentitybindings -A", ""],
  ];
  const width = Math.max(...commands.map(([command]) => command.length));
  print(`
The demo is up. Try it yourself in another shell:
${commands.map(([command, comment]) => `    ${command.padEnd(width)}${comment ? `   # ${comment}` : ""}`.trimEnd()).join("\n")}
  The operator: ops ${env.opsUrl} (/metrics /healthz /readyz), webhooks https://127.0.0.1:${env.webhookPort}, log ${env.operatorLogPath}
  pids: ${env.pids().join(" ")}
  temp dirs: ${env.tempDirs().join(" ")}
Press Ctrl-C to stop everything and clean up.`);
}
