import { request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { backoffDelay, type BackoffPolicy } from "../retry/backoff.js";
import { REQUEST_TIMEOUT_MS, RequestTimeoutError } from "./clients.js";
import { objectKey } from "./resources.js";

/** waitForSync() of an informer that was stopped (or whose caller gave up) before it synced. */
export class InformerStoppedError extends Error {
  constructor(path: string) {
    super(`cache of ${path} stopped before it synced`);
    this.name = "InformerStoppedError";
  }
}

export interface ObjectList<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
}

export interface ListParams {
  labelSelector?: string;
  fieldSelector?: string;
  limit: number;
  _continue?: string;
}

export type InformerEvent = "add" | "update" | "delete";
type Handler<T> = (object: T, old?: T) => void;

export interface InformerOptions<T> {
  /** The collection's URL path, e.g. /api/v1/namespaces. */
  path: string;
  list: (params: ListParams) => Promise<ObjectList<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** Server-side watch timeout; a watch silent for longer than this plus a grace is treated as dead. */
  watchTimeoutSeconds?: number;
  pageSize?: number;
  /** How long past the server-side timeout a watch may stay silent before it is abandoned (default 10 s). */
  idleGraceMs?: number;
  /** A list page that takes longer is abandoned and retried (default 60 s): a hung connection must not freeze the cache. */
  listTimeoutMs?: number;
  /** A watch whose answer (status and headers) takes longer is abandoned and retried (default: the request deadline, 30 s). */
  watchConnectTimeoutMs?: number;
  backoff?: BackoffPolicy;
  onError?: (error: Error, context: string) => void;
  /**
   * What of an object to keep (client-go's transform, plus a filter): the object to store, or
   * undefined to hold none (one stored before is then removed, with a delete event). For
   * collections no selector can narrow, so the cache holds only the few that matter, and only
   * the fields read. It sees the whole object, managedFields included; default: all but managedFields.
   */
  keep?: (object: T) => T | undefined;
}

interface WatchEvent {
  type?: string;
  object?: KubernetesObject & { code?: number };
}

/** A watch the API server refused: its HTTP status (410 Gone: our resourceVersion is too old). */
class WatchRefusedError extends Error {
  constructor(
    readonly statusCode: number,
    body: string,
  ) {
    super(`watch refused: HTTP ${statusCode} ${body.slice(0, 200)}`);
    this.name = "WatchRefusedError";
  }
}

/**
 * Opens a watch request and resolves with the response stream once the API server answered 200.
 * Unlike client-node's Watch, the connection attempt itself is abortable: `signal` (a deadline, a stop)
 * ends it whether or not the server ever answers, where Watch.watch() only returns its controller once
 * the answer is in, so a black-holed connection could be neither timed out nor stopped.
 */
async function openWatch(kubeConfig: KubeConfig, path: string, params: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(cluster.server + path);
  url.searchParams.set("watch", "true");
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  // The kubeconfig's TLS settings, agent and credentials (a token read afresh on each call).
  const options: RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(options);
  signal.throwIfAborted();
  const send = url.protocol === "http:" ? httpRequest : httpsRequest;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = send(url, { ...options, method: "GET", signal }, (response) => {
      if (response.statusCode === 200) {
        resolve(response);
        return;
      }
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => reject(new WatchRefusedError(response.statusCode ?? 0, body)));
      response.on("error", reject);
    });
    request.on("error", (error) => reject(signal.aborted ? (signal.reason as Error) : error));
    // As client-node's Watch does: TCP keep-alive probes, so a peer that vanished is noticed even between watches.
    request.on("socket", (socket) => socket.setKeepAlive(true, 30_000));
    request.end();
  });
}

const WATCH_IDLE_GRACE_MS = 10_000;
const LIST_TIMEOUT_MS = 60_000;
/** After a failed list or watch: 0.5 s doubling to 30 s, as client-go's reflector roughly does. */
const RELIST_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000 };

/** `promise`, or a rejection after `ms` or as soon as `signal` is aborted (the timer never outlives either). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    onAbort = () => reject(new Error(`${what} abandoned`));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener("abort", onAbort);
  });
}

/**
 * List-then-watch cache of one resource, like client-go's reflector + store. Unlike client-node's
 * ListWatch it never stops on errors: it backs off, re-lists (so missed deletes are noticed) and
 * watches again; and it bounds a silent watch (a proxy that stops forwarding) by asking the server to
 * end each watch after `watchTimeoutSeconds` and aborting one that outlives that by a grace.
 */
export class Informer<T extends KubernetesObject> {
  /** namespace -> name -> object; cluster-scoped objects live under "". */
  private readonly store = new Map<string, Map<string, T>>();
  private count = 0;
  private readonly handlers: Record<InformerEvent, Handler<T>[]> = { add: [], update: [], delete: [] };
  private resourceVersion = "";
  private running = false;
  private hasSynced = false;
  private syncWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private abortWatch: (() => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Aborted on stop and on every restart: a list in flight must not hold a timer or a connection. */
  private listAbort = new AbortController();
  /** Bumped on every (re)start so callbacks of an abandoned watch are ignored. */
  private generation = 0;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly options: InformerOptions<T>,
  ) {}

  /** Calls `handler` on every `event` until the returned function is called. */
  on(event: InformerEvent, handler: Handler<T>): () => void {
    this.handlers[event].push(handler);
    return () => {
      const handlers = this.handlers[event];
      const index = handlers.indexOf(handler);
      if (index >= 0) handlers.splice(index, 1);
    };
  }

  /** Handlers registered now, for every event (a leak shows as growth). */
  get handlerCount(): number {
    return this.handlers.add.length + this.handlers.update.length + this.handlers.delete.length;
  }

  get synced(): boolean {
    return this.hasSynced;
  }

  /**
   * Resolves once the first complete list is in the store; rejects when the informer is stopped or
   * `signal` is aborted first, so nobody waits forever on a cache that will never sync.
   */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(new InformerStoppedError(this.options.path));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (error: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      const onAbort = () => {
        this.syncWaiters = this.syncWaiters.filter((other) => other !== waiter);
        reject(new InformerStoppedError(this.options.path));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.syncWaiters.push(waiter);
    });
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.store.get(namespace ?? "")?.get(name);
  }

  /** Objects of one namespace, or all of them. */
  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.store.get(namespace)?.values() ?? [])];
    return [...this.store.values()].flatMap((objects) => [...objects.values()]);
  }

  get size(): number {
    return this.count;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // relistAndWatch() turns every failure into a logged, backed-off restart; it never rejects.
    void this.relistAndWatch();
  }

  stop(): void {
    this.running = false;
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(new InformerStoppedError(this.options.path));
    this.abandonList();
    this.generation++;
    clearTimeout(this.idleTimer);
    clearTimeout(this.retryTimer);
    this.abortWatch?.();
    this.abortWatch = undefined;
  }

  /** Forces a re-list and a fresh watch, e.g. after the caller saw the cache go stale. */
  restart(): void {
    if (!this.running) return;
    this.resourceVersion = "";
    this.scheduleRestart(0);
  }

  private async relistAndWatch(): Promise<void> {
    const generation = ++this.generation;
    try {
      if (!this.resourceVersion) await this.relist(generation);
      if (generation !== this.generation) return;
      await this.startWatch(generation);
    } catch (error) {
      if (generation !== this.generation) return;
      this.fail(error as Error, this.resourceVersion ? "watch" : "list");
    }
  }

  private async relist(generation: number): Promise<void> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    do {
      const page = await withTimeout(
        this.options.list({
          labelSelector: this.options.labelSelector,
          fieldSelector: this.options.fieldSelector,
          limit: this.options.pageSize ?? 500,
          _continue: continueToken,
        }),
        this.options.listTimeoutMs ?? LIST_TIMEOUT_MS,
        `list ${this.options.path}`,
        this.listAbort.signal,
      );
      if (generation !== this.generation) return;
      items.push(...page.items);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?._continue ?? page.metadata?.continue ?? undefined;
    } while (continueToken);
    this.replace(items);
    this.resourceVersion = resourceVersion;
    if (!this.hasSynced) {
      this.hasSynced = true;
      for (const waiter of this.syncWaiters.splice(0)) waiter.resolve();
    }
  }

  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(objectKey(item));
      this.upsert(item);
    }
    for (const old of this.list()) {
      if (!seen.has(objectKey(old))) this.remove(old);
    }
  }

  /** What of an object the store holds: undefined for none (then one stored before is removed). */
  private kept(object: T): T | undefined {
    // A keep function sees the whole object (the audit reads who wrote it from managedFields) and
    // returns only what it reads. Without one nothing reads managedFields, and they are most of a
    // small object: a cache of 12,000 identities holds about 10 MiB less without them (what
    // client-go users do with a transform).
    if (this.options.keep) return this.options.keep(object);
    if (object.metadata?.managedFields) delete object.metadata.managedFields;
    return object;
  }

  private upsert(incoming: T, silent = false): void {
    const object = this.kept(incoming);
    if (object === undefined) {
      if (this.get(incoming.metadata?.namespace, incoming.metadata?.name ?? "")) this.remove(incoming, silent);
      return;
    }
    const namespace = object.metadata?.namespace ?? "";
    const name = object.metadata?.name ?? "";
    let objects = this.store.get(namespace);
    if (!objects) this.store.set(namespace, (objects = new Map<string, T>()));
    const old = objects.get(name);
    objects.set(name, object);
    if (!old) {
      this.count++;
      if (!silent) this.emit("add", object);
    } else if (!silent && old.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
      this.emit("update", object, old);
    }
  }

  private remove(object: T, silent = false): void {
    const namespace = object.metadata?.namespace ?? "";
    const objects = this.store.get(namespace);
    const old = objects?.get(object.metadata?.name ?? "");
    if (objects && old) {
      objects.delete(object.metadata?.name ?? "");
      if (objects.size === 0) this.store.delete(namespace);
      this.count--;
    }
    if (!silent) this.emit("delete", old ?? object);
  }

  /**
   * Records an object the caller just wrote, so work done before its watch event arrives sees it;
   * the event itself then changes nothing (same resourceVersion). Handlers are not called: the
   * writer already knows.
   */
  observe(object: T): void {
    this.upsert(object, true);
  }

  /** Forgets an object the caller just deleted. */
  forget(object: T): void {
    if (this.get(object.metadata?.namespace, object.metadata?.name ?? "")) this.remove(object, true);
  }

  private emit(event: InformerEvent, object: T, old?: T): void {
    for (const handler of this.handlers[event]) {
      try {
        handler(object, old);
      } catch (error) {
        this.options.onError?.(error as Error, `${event} handler`);
      }
    }
  }

  /**
   * One watch: abandoned when no answer comes within the connect deadline, when it outlives the
   * server-side timeout by a grace (armIdleTimer), and at once on stop or restart.
   */
  private async startWatch(generation: number): Promise<void> {
    const timeoutSeconds = this.watchTimeoutSeconds();
    const params: Record<string, string> = {
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: "true",
      timeoutSeconds: String(timeoutSeconds),
    };
    if (this.options.labelSelector) params.labelSelector = this.options.labelSelector;
    if (this.options.fieldSelector) params.fieldSelector = this.options.fieldSelector;
    this.armIdleTimer(generation, timeoutSeconds);
    const abort = new AbortController();
    this.abortWatch = () => abort.abort(new Error(`watch of ${this.options.path} stopped`));
    const connectMs = this.options.watchConnectTimeoutMs ?? REQUEST_TIMEOUT_MS;
    const connectTimer = setTimeout(() => abort.abort(new RequestTimeoutError(`watch ${this.options.path}`, connectMs)), connectMs);
    let response: IncomingMessage;
    try {
      response = await openWatch(this.kubeConfig, this.options.path, params, abort.signal);
    } catch (error) {
      // Refused (410 Gone: re-list at once), timed out or failed: the same path as a watch that ended.
      this.onWatchDone(generation, error);
      return;
    } finally {
      clearTimeout(connectTimer);
    }
    if (generation !== this.generation) {
      response.destroy();
      return;
    }
    let buffer = "";
    let done = false;
    const finish = (error: unknown) => {
      if (done) return;
      done = true;
      response.destroy();
      this.onWatchDone(generation, error);
    };
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.trim()) continue;
        let event: WatchEvent;
        try {
          event = JSON.parse(line) as WatchEvent;
        } catch {
          continue; // as client-node's Watch: a line that is not JSON is skipped
        }
        this.onEvent(generation, event.type ?? "", event.object);
      }
    });
    response.on("end", () => finish(null));
    response.on("error", (error) => finish(error));
    response.on("close", () => finish(response.complete ? null : new Error(`watch of ${this.options.path}: connection closed mid-answer`)));
  }

  private watchTimeoutSeconds(): number {
    const base = this.options.watchTimeoutSeconds ?? 60;
    // Jitter spreads the re-watches of many replicas, as client-go does.
    return Math.round(base * (1 + Math.random() * 0.25));
  }

  private armIdleTimer(generation: number, timeoutSeconds: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(
      () => {
        if (generation !== this.generation) return;
        this.fail(new Error(`watch of ${this.options.path} outlived its ${timeoutSeconds}s timeout; assuming a dead connection`), "watch");
      },
      timeoutSeconds * 1000 + (this.options.idleGraceMs ?? WATCH_IDLE_GRACE_MS),
    );
  }

  private onEvent(generation: number, type: string, object: WatchEvent["object"]): void {
    if (generation !== this.generation || !object) return;
    this.failures = 0;
    switch (type) {
      case "ADDED":
      case "MODIFIED":
        this.upsert(object as T);
        break;
      case "DELETED":
        this.remove(object as T);
        break;
      case "ERROR":
        // 410 Gone: our resourceVersion is too old; the watch ends and we re-list.
        if (object.code === 410) this.resourceVersion = "";
        return;
    }
    const version = object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
  }

  private onWatchDone(generation: number, error: unknown): void {
    if (generation !== this.generation || !this.running) return;
    clearTimeout(this.idleTimer);
    const status = (error as { statusCode?: number; code?: number } | null)?.statusCode ?? (error as { code?: number } | null)?.code;
    if (status === 410) this.resourceVersion = "";
    if (error && status !== 410) {
      this.fail(error instanceof Error ? error : new Error(JSON.stringify(error)), "watch");
      return;
    }
    // A normal server-side close: continue from where we are (relistAndWatch never rejects).
    void this.relistAndWatch();
  }

  private fail(error: Error, context: string): void {
    this.options.onError?.(error, `${context} ${this.options.path}`);
    this.resourceVersion = "";
    this.failures++;
    this.scheduleRestart(backoffDelay(this.options.backoff ?? RELIST_BACKOFF, this.failures));
  }

  private abandonList(): void {
    this.listAbort.abort();
    this.listAbort = new AbortController();
  }

  private scheduleRestart(delayMs: number): void {
    this.abandonList();
    this.generation++;
    clearTimeout(this.idleTimer);
    clearTimeout(this.retryTimer);
    this.abortWatch?.();
    this.abortWatch = undefined;
    this.retryTimer = setTimeout(() => {
      if (this.running) void this.relistAndWatch(); // never rejects, see start()
    }, delayMs);
  }
}
