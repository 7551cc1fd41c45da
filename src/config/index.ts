// The configuration module's public surface.
export { loadConfig, readServiceAccountNamespace, SERVICE_ACCOUNT_NAMESPACE_FILE } from "./cli.js";
export { parseConfig, type Config, type ConfigContext, type ParseResult } from "./config.js";
export { formatDuration, formatDurationNs, parseDuration, type DurationResult } from "./duration.js";
export { COMMANDS, FLAGS, type FlagKind, type FlagSpec } from "./flags.js";
export { renderFlagsMarkdown, renderHelp } from "./help.js";
export { compileLayout, formatGoTime, type LayoutResult, type TimeLayout } from "./timelayout.js";
export { rotationLeadMs, type ListenAddress, type RotationPolicy } from "./values.js";
