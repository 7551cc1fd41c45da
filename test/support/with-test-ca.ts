// Runs a script (a bench, the demo) in a child Node that trusts the throwaway test CA, which local
// HTTPS fakes are issued from. NODE_EXTRA_CA_CERTS is read only at start-up, hence the extra process.
//   node --import tsx test/support/with-test-ca.ts bench/sync-scale.ts --msis=2000
import { spawnTrustingTestCa } from "./test-ca.js";

const [script, ...args] = process.argv.slice(2);
if (!script) {
  console.error("usage: with-test-ca.ts <script.ts> [args...]");
  process.exit(2);
}
await spawnTrustingTestCa([script, ...args]);
