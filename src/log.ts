import pino, { type Logger } from "pino";
import PinoPretty from "pino-pretty";

/** JSON lines with --log.json, a readable single-line format otherwise (pino-pretty, synchronous). */
export function createLogger(options: { debug: boolean; json: boolean }, destination?: NodeJS.WritableStream): Logger {
  const level = options.debug ? "debug" : "info";
  const base = {
    level,
    base: { app: "azure-msi-operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ["*.token", "*.secret", "*.password", "*.authorization", "*.key"], censor: "[redacted]" },
  };
  if (options.json) return pino(base, destination ?? pino.destination({ sync: true }));
  return pino(base, pinoPretty(destination));
}

function pinoPretty(destination?: NodeJS.WritableStream) {
  return PinoPretty({
    colorize: false,
    sync: true,
    singleLine: true,
    translateTime: "SYS:standard",
    ignore: "pid,hostname,app",
    destination: destination ?? 1,
  });
}
