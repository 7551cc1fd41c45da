import pino, { type Logger } from "pino";
import PinoPretty from "pino-pretty";

/**
 * Log levels in order, as their names appear on a line. The Go original logs zap's production JSON,
 * whose levels are the same lower-case names, so queries on `"level":"error"` keep working.
 */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Position of a logged level (a name, or pino's number from a logger of our own tests), -1 when unknown. */
export function levelRank(level: unknown): number {
  if (typeof level === "number") return LOG_LEVELS.indexOf(pino.levels.labels[level] as LogLevel);
  return LOG_LEVELS.indexOf(String(level) as LogLevel);
}

/** True when a parsed log line is at `level` or above. */
export function atLeast(line: { level?: unknown }, level: LogLevel): boolean {
  const rank = levelRank(line.level);
  return rank >= 0 && rank >= LOG_LEVELS.indexOf(level);
}

/**
 * JSON lines with --log.json, a readable single-line format otherwise (pino-pretty, synchronous).
 * JSON lines carry `level` as a name and `msg`, as zap does; the time is `ts` (ISO 8601) where zap has
 * `ts` too (the original drops it in JSON mode, the container runtime stamps lines anyway).
 */
export function createLogger(options: { debug: boolean; json: boolean }, destination: NodeJS.WritableStream | 1 | 2 = 1): Logger {
  const level = options.debug ? "debug" : "info";
  const base = {
    level,
    base: { app: "azure-msi-operator" },
    redact: { paths: ["*.token", "*.secret", "*.password", "*.authorization", "*.key"], censor: "[redacted]" },
  };
  if (options.json) {
    return pino(
      { ...base, formatters: { level: (label: string) => ({ level: label }) }, timestamp: () => `,"ts":"${new Date().toISOString()}"` },
      typeof destination === "number" ? pino.destination({ dest: destination, sync: true }) : destination,
    );
  }
  return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, pinoPretty(destination));
}

function pinoPretty(destination: NodeJS.WritableStream | 1 | 2) {
  return PinoPretty({
    colorize: false,
    sync: true,
    singleLine: true,
    translateTime: "SYS:standard",
    ignore: "pid,hostname,app",
    destination,
  });
}
