import { watchFile, unwatchFile } from "node:fs";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import type { CoreV1Api, KubeConfig, V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Informer } from "../src/kube/informer.js";
import type { Pem } from "./pki.js";
import { servingPemFromSecret } from "./secret.js";
import { certificateWindow } from "./state.js";

/** ready() of a source that was stopped (or whose caller gave up) before any certificate loaded. */
export class CertSourceStoppedError extends Error {
  constructor() {
    super("certificate source stopped before a serving certificate loaded");
    this.name = "CertSourceStoppedError";
  }
}

/** Where a replica gets its serving certificate from, and tells the server when it changes. */
export interface CertSource {
  /**
   * Resolves with the first usable certificate; rejects with CertSourceStoppedError when the source
   * is stopped or `signal` aborts first, so a shutdown never waits for a certificate that will not come.
   */
  ready(signal?: AbortSignal): Promise<Pem>;
  current(): Pem | undefined;
  onChange(listener: (pem: Pem) => void): void;
  /** Starts reading (a watch, a file poll); nothing happens before. */
  start(): void;
  /** Stops reading and releases every ready() waiter. */
  stop(): void;
}

/** A cert/key pair TLS would refuse (mismatch, garbage) is reported instead of loaded. */
export function usablePair(pem: Pem): string | undefined {
  try {
    createSecureContext({ cert: pem.cert, key: pem.key });
    certificateWindow(pem.cert);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

abstract class BaseSource implements CertSource {
  protected pem: Pem | undefined;
  private readonly listeners: ((pem: Pem) => void)[] = [];
  private readyWaiters: { resolve: (pem: Pem) => void; reject: (error: Error) => void }[] = [];
  private stopped = false;

  constructor(protected readonly log: Logger) {}

  ready(signal?: AbortSignal): Promise<Pem> {
    if (this.pem) return Promise.resolve(this.pem);
    if (this.stopped || signal?.aborted) return Promise.reject(new CertSourceStoppedError());
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.readyWaiters = this.readyWaiters.filter((other) => other !== waiter);
        reject(new CertSourceStoppedError());
      };
      const waiter = {
        resolve: (pem: Pem) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(pem);
        },
        reject: (error: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.readyWaiters.push(waiter);
    });
  }

  stop(): void {
    this.stopped = true;
    this.halt();
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(new CertSourceStoppedError());
  }

  current(): Pem | undefined {
    return this.pem;
  }

  onChange(listener: (pem: Pem) => void): void {
    this.listeners.push(listener);
  }

  protected offer(pem: Pem, origin: string): void {
    if (this.pem && this.pem.cert === pem.cert && this.pem.key === pem.key) return;
    const problem = usablePair(pem);
    if (problem) {
      this.log.error({ origin, problem }, "serving certificate not loaded: keeping the previous one");
      return;
    }
    this.pem = pem;
    this.log.info({ origin, notAfter: new Date(certificateWindow(pem.cert).notAfter).toISOString() }, "serving certificate loaded");
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve(pem);
    for (const listener of this.listeners) listener(pem);
  }

  abstract start(): void;
  /** Stops the reading start() began. */
  protected abstract halt(): void;
}

/** Every replica: the serving certificate from the operator's Secret, kept current by a watch. */
export class SecretCertSource extends BaseSource {
  private readonly informer: Informer<V1Secret>;

  constructor(kubeConfig: KubeConfig, core: CoreV1Api, namespace: string, secretName: string, log: Logger) {
    super(log);
    this.informer = new Informer<V1Secret>(kubeConfig, {
      path: `/api/v1/namespaces/${namespace}/secrets`,
      fieldSelector: `metadata.name=${secretName}`,
      list: (params) => core.listNamespacedSecret({ namespace, ...params }),
      onError: (error, context) => log.warn({ err: error.message, context }, "certificate Secret watch error; retrying"),
    });
    const load = (secret: V1Secret) => {
      const pem = servingPemFromSecret(secret);
      if (pem) this.offer(pem, `secret ${namespace}/${secretName}`);
    };
    this.informer.on("add", load);
    this.informer.on("update", load);
  }

  start(): void {
    this.informer.start();
  }

  protected halt(): void {
    this.informer.stop();
  }
}

/** Bring-your-own (--webhook.tls.cert/--webhook.tls.key, e.g. cert-manager): the files, re-read when they change. */
export class FileCertSource extends BaseSource {
  private readonly paths: string[];

  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
    log: Logger,
    private readonly pollMs = 1_000,
  ) {
    super(log);
    this.paths = [certFile, keyFile];
  }

  start(): void {
    // load() logs its own failures; the next change of either file tries again.
    for (const path of this.paths) watchFile(path, { interval: this.pollMs }, () => void this.load());
    void this.load();
  }

  private async load(): Promise<void> {
    try {
      const [cert, key] = await Promise.all([readFile(this.certFile, "utf8"), readFile(this.keyFile, "utf8")]);
      this.offer({ cert, key }, `files ${this.certFile}, ${this.keyFile}`);
    } catch (error) {
      this.log.error({ err: (error as Error).message }, "could not read the serving certificate files");
    }
  }

  protected halt(): void {
    for (const path of this.paths) unwatchFile(path);
  }
}
