// `npm run controlplane:build`: builds (or finds in the cache) the local control plane binaries and
// prints where they are, so CI and the demo pay the one-time build before any test timer starts.
import { controlPlaneAssets } from "./assets.js";

const started = Date.now();
const assets = await controlPlaneAssets();
for (const [name, path] of Object.entries(assets)) console.log(`${name.padEnd(22)} ${path}`);
console.log(`control plane ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
