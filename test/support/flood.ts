// What a hostile in-cluster client sends the webhook (issue 23), for the in-process test and the one
// against the real API server: reviews each naming a different unknown resource, maximal bodies on
// many connections back to back, and requests that declare a body and hold it back. Only 127.0.0.1.
import { readFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { connect, type TLSSocket } from "node:tls";
import type { AdmissionReview } from "../../src/webhook/admission.js";
import { loadReview } from "../../src/webhook/fixtures.js";

/** Series in a Prometheus exposition: every sample line. */
export function seriesCount(exposition: string): number {
  return exposition.split("\n").filter((line) => line !== "" && !line.startsWith("#")).length;
}

/** An AdmissionReview for a resource no webhook of ours is for, different for each `index`. */
export function unknownResourceReview(index: number): AdmissionReview {
  const review = loadReview("binding-create-labelled");
  review.request.uid = `flood-${index}`;
  review.request.resource = { group: `flood${index % 97}.example.com`, version: `v${index % 7}`, resource: `floods-${index}-${"r".repeat(index % 50)}` };
  review.request.kind = { group: review.request.resource.group, version: review.request.resource.version, kind: `Flood${index}` };
  return review;
}

/**
 * A well-formed review (the developer's AzureIdentity create, which the webhook refuses) of exactly
 * `bytes` bytes of JSON, padded with annotations. `fields: "many"`: many small annotations, the shape
 * that takes the most memory once parsed (V8 objects: about 11 times the text); "one": one long value.
 */
export function paddedReview(bytes: number, uid = "padded", fields: "one" | "many" = "one"): string {
  const review = loadReview("identity-create-by-developer");
  review.request.uid = uid;
  const object = review.request.object!;
  const annotations: Record<string, string> = { pad: "" };
  object.metadata = { ...object.metadata, annotations };
  const length = () => Buffer.byteLength(JSON.stringify(review));
  if (length() > bytes) throw new Error(`a review is at least ${length()} bytes`);
  if (fields === "many") {
    // `,"k1b2":"v"` is the key's length + 7 bytes.
    let room = bytes - length();
    for (let index = 0; room > 64; index++) {
      const key = `k${index.toString(36)}`;
      annotations[key] = "v";
      room -= key.length + 7;
    }
  }
  annotations.pad = "x".repeat(bytes - length());
  const text = JSON.stringify(review);
  if (Buffer.byteLength(text) !== bytes) throw new Error(`padded to ${Buffer.byteLength(text)} bytes, not ${bytes}`);
  return text;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One POST on `agent`; the whole answer, or the transport error. */
export function postReview(port: number, ca: string, path: string, body: string | Buffer, agent: Agent | false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        ca,
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export interface BodyFloodResult {
  sent: number;
  statuses: Record<string, number>;
  /** Posts that got no answer (the server closed a refused connection while the body was still being written). */
  transportErrors: number;
}

/** `connections` clients, each posting `body` back to back until `durationMs` have passed, reconnecting whenever the server closes. */
export async function bodyFlood(options: {
  port: number;
  ca: string;
  path: string;
  body: Buffer;
  connections: number;
  durationMs: number;
}): Promise<BodyFloodResult> {
  const until = Date.now() + options.durationMs;
  const result: BodyFloodResult = { sent: 0, statuses: {}, transportErrors: 0 };
  await Promise.all(
    Array.from({ length: options.connections }, async () => {
      // One connection per client, kept alive while the server keeps it.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        while (Date.now() < until) {
          result.sent++;
          try {
            const reply = await postReview(options.port, options.ca, options.path, options.body, agent);
            result.statuses[reply.status] = (result.statuses[reply.status] ?? 0) + 1;
          } catch {
            result.transportErrors++;
          }
        }
      } finally {
        agent.destroy();
      }
    }),
  );
  return result;
}

export interface HeldRequest {
  socket: TLSSocket;
  /** Resolves with the first bytes of the answer (status line and headers) whenever they come. */
  answer: Promise<string>;
  /** What has come back so far. */
  received: () => string;
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>;
  /** Bytes of body written so far. */
  bodySent: () => number;
  sendBody: (body: Buffer) => void;
}

/** A POST whose headers declare `contentLength` (or chunked) and whose body is not sent until asked. */
export function heldRequest(port: number, ca: string, path: string, contentLength: number | "chunked"): Promise<HeldRequest> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca });
    let received = "";
    let sent = 0;
    let answered: (text: string) => void = () => undefined;
    const answer = new Promise<string>((resolveAnswer) => (answered = resolveAnswer));
    const closed = new Promise<void>((resolveClosed) => socket.once("close", () => resolveClosed()));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (received.includes("\r\n\r\n")) answered(received);
    });
    socket.on("error", () => undefined);
    socket.once("close", () => answered(received));
    socket.once("secureConnect", () => {
      const framing = contentLength === "chunked" ? "transfer-encoding: chunked" : `content-length: ${contentLength}`;
      socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n${framing}\r\n\r\n`);
      resolve({
        socket,
        answer,
        received: () => received,
        closed,
        bodySent: () => sent,
        sendBody: (body) => {
          sent += body.length;
          socket.write(
            contentLength === "chunked" ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from("\r\n0\r\n\r\n")]) : body,
          );
        },
      });
    });
    socket.once("error", reject);
  });
}

/** The status code of a raw HTTP/1.1 answer. */
export function statusOf(raw: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
}

export interface MemorySample {
  atMs: number;
  rssMiB: number;
}

/** Samples a process's VmRSS from /proc every `everyMs`; on stop, the samples and the kernel's own peak (VmHWM). */
export function memorySampler(pid: number, everyMs = 100): { stop: () => Promise<{ samples: MemorySample[]; peakRssMiB: number; hwmMiB: number }> } {
  const samples: MemorySample[] = [];
  const started = Date.now();
  const read = async () => {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rssMiB: kib("VmRSS") / 1024, hwmMiB: kib("VmHWM") / 1024 };
  };
  const timer = setInterval(() => {
    void read()
      .then(({ rssMiB }) => samples.push({ atMs: Date.now() - started, rssMiB }))
      .catch(() => undefined);
  }, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      const last = await read();
      return { samples, peakRssMiB: Math.max(last.rssMiB, ...samples.map((sample) => sample.rssMiB)), hwmMiB: last.hwmMiB };
    },
  };
}
