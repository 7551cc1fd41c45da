import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { generateCa, issueCert, type Pem } from "./pki.js";
import { CertSourceStoppedError, FileCertSource } from "./sources.js";

const HOUR = 3_600_000;

async function leaf(ca: Pem, name: string): Promise<Pem> {
  return issueCert(ca, { commonName: name, dnsNames: [name], usage: "server", validityMs: HOUR });
}

test("bring-your-own files are loaded, reloaded when they change, and a broken pair is not loaded", async () => {
  const dir = await mkdtemp(join(tmpdir(), "amo-byo-"));
  const certFile = join(dir, "tls.crt");
  const keyFile = join(dir, "tls.key");
  const ca = await generateCa("byo", HOUR);
  const first = await leaf(ca, "first.example");
  await writeFile(certFile, first.cert);
  await writeFile(keyFile, first.key);
  // The source's own words are the proof that it read the broken pair and kept the working one.
  const rejected: { resolve: (line: Record<string, unknown>) => void }[] = [];
  const sink = {
    write(chunk: string) {
      const line = JSON.parse(chunk) as Record<string, unknown>;
      if (line.msg === "serving certificate not loaded: keeping the previous one") for (const waiter of rejected.splice(0)) waiter.resolve(line);
    },
  };
  const nextRejection = () => new Promise<Record<string, unknown>>((resolve) => rejected.push({ resolve }));
  const source = new FileCertSource(certFile, keyFile, pino({ level: "error" }, sink), 50);
  source.start();
  try {
    assert.equal((await source.ready()).cert, first.cert);
    const changed = new Promise<Pem>((resolve) => source.onChange(resolve));
    const second = await leaf(ca, "second.example");
    await writeFile(keyFile, second.key);
    await writeFile(certFile, second.cert);
    assert.equal((await changed).cert, second.cert);
    // A certificate with someone else's key: rejected, the working pair stays.
    const rejection = nextRejection();
    await writeFile(certFile, first.cert);
    assert.match(String((await rejection).problem), /key/i, "the pair was read and refused");
    assert.equal(source.current()?.cert, second.cert);
  } finally {
    source.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

// Issue 22 item 4: against f48d249 a ready() waiter was never released, so the webhook's stop() (and
// with it SIGTERM) never completed while no certificate had loaded.
test("ready() waiters are released when the source stops, or when their own signal aborts, before any certificate", { timeout: 10_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "amo-byo-"));
  const source = new FileCertSource(join(dir, "absent.crt"), join(dir, "absent.key"), pino({ level: "silent" }), 50);
  try {
    source.start();
    const controller = new AbortController();
    const mine = source.ready(controller.signal);
    const others = [source.ready(), source.ready()];
    controller.abort();
    await assert.rejects(mine, CertSourceStoppedError);
    source.stop();
    for (const waiting of others) await assert.rejects(waiting, CertSourceStoppedError);
    await assert.rejects(source.ready(), CertSourceStoppedError, "after stop, at once");
    assert.equal(source.current(), undefined);
  } finally {
    source.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
