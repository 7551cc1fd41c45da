// Open-loop load at a fixed rate for latency: requests go out on a schedule (checked every
// millisecond) whether or not earlier ones have returned, so a stalled server shows up in the
// figures instead of slowing the load down (no coordinated omission). Latency counts from the moment
// a request is written; how late the writes were against the schedule is reported apart. autocannon's own
// `overallRate` sends each second's quota in a burst and corrects in whole milliseconds, so it
// reports the latency of a saturated server instead. node:https as the client costs more CPU per
// request than the server it measures; this writes pre-built HTTP/1.1 requests on keep-alive TLS
// connections (round robin, pipelined when one is busy) and reads just enough of each answer.
import { connect, type TLSSocket } from "node:tls";
import { percentile } from "./common.js";

export interface OpenLoopOptions {
  port: number;
  path: string;
  body: string;
  ca: string;
  ratePerSecond: number;
  seconds: number;
  connections: number;
}

export interface OpenLoopResult {
  rate: number;
  sent: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How late against the schedule the client wrote its requests (p99): small means the rate held. */
  sendLagP99Ms: number;
}

interface Connection {
  socket: TLSSocket;
  /** When each request sent on it and not yet answered was written, oldest first. */
  pending: number[];
  buffered: Buffer;
}

const HEADER_END = Buffer.from("\r\n\r\n");

export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const body = Buffer.from(options.body);
  const requestBytes = Buffer.concat([
    Buffer.from(`POST ${options.path} HTTP/1.1\r\nhost: 127.0.0.1:${options.port}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`),
    body,
  ]);
  const total = Math.round(options.ratePerSecond * options.seconds);
  const latencies: number[] = [];
  let errors = 0;

  const onData = (connection: Connection, chunk: Buffer) => {
    connection.buffered = connection.buffered.length === 0 ? chunk : Buffer.concat([connection.buffered, chunk]);
    for (;;) {
      const headerEnd = connection.buffered.indexOf(HEADER_END);
      if (headerEnd < 0) return;
      const head = connection.buffered.subarray(0, headerEnd).toString("latin1");
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      const end = headerEnd + HEADER_END.length + length;
      if (connection.buffered.length < end) return;
      connection.buffered = connection.buffered.subarray(end);
      const sentAt = connection.pending.shift();
      if (sentAt === undefined) continue;
      if (head.startsWith("HTTP/1.1 200")) latencies.push(performance.now() - sentAt);
      else errors++;
    }
  };
  const connections = await Promise.all(
    Array.from(
      { length: options.connections },
      () =>
        new Promise<Connection>((resolve, reject) => {
          const socket = connect({ host: "127.0.0.1", port: options.port, ca: options.ca }, () => resolve(connection));
          const connection: Connection = { socket, pending: [], buffered: Buffer.alloc(0) };
          socket.setNoDelay(true);
          socket.on("data", (chunk: Buffer) => onData(connection, chunk));
          socket.on("error", reject);
        }),
    ),
  );

  let sent = 0;
  const lags: number[] = [];
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * options.ratePerSecond) / 1000));
      for (; sent < due; sent++) {
        const connection = connections[sent % connections.length]!;
        const now = performance.now();
        lags.push(now - (start + (sent * 1000) / options.ratePerSecond));
        connection.pending.push(now);
        connection.socket.write(requestBytes);
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  // Stragglers get a few seconds; whatever has not been answered by then counts as an error.
  const unanswered = () => connections.reduce((sum, connection) => sum + connection.pending.length, 0);
  const deadline = performance.now() + 5_000;
  while (unanswered() > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  errors += unanswered();
  for (const connection of connections) connection.socket.destroy();
  const ms = (value: number) => +value.toFixed(2);
  return {
    rate: options.ratePerSecond,
    sent,
    errors,
    p50Ms: ms(percentile(latencies, 50)),
    p99Ms: ms(percentile(latencies, 99)),
    maxMs: ms(latencies.reduce((max, value) => Math.max(max, value), 0)),
    sendLagP99Ms: ms(percentile(lags, 99)),
  };
}
