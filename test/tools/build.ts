// `npm run tools:build`: builds (or finds in the cache) the Go tools tests run and prints where they
// are, so CI pays the one-time build in its own step, before any test starts.
import { goToolBinary } from "./gotool.js";
import { TEST_TOOLS } from "./tools.js";

const started = Date.now();
for (const tool of TEST_TOOLS) console.log(`${tool.name.padEnd(22)} ${await goToolBinary(tool)}`);
console.log(`tools ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
