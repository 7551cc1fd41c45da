import type { GoTool } from "./gotool.js";
import { HELM } from "./helm.js";
import { PROMTOOL } from "./promtool.js";

/**
 * Every Go tool tests run: `npm run tools:build` builds these, and test/run.ts builds the ones the
 * selected test files name. Adding one is a GoTool spec here.
 */
export const TEST_TOOLS: readonly GoTool[] = [PROMTOOL, HELM];
