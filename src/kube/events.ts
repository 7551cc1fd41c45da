import { randomBytes } from "node:crypto";
import { EventsV1Api, setHeaderOptions, V1MicroTime, type KubeConfig } from "@kubernetes/client-node";
import { abortable, apiConfiguration } from "./clients.js";
import type { Logger } from "pino";
import type { Metrics } from "../metrics/metrics.js";
import { kubeErrorMessage, statusCode } from "./errors.js";
import { DEFAULT_CORRELATOR, EventCorrelator, type CorrelatorOptions, type EventSeries, type ObjectEvent } from "./event-correlator.js";

export type { ObjectEvent, ObjectRef } from "./event-correlator.js";

export const REPORTING_CONTROLLER = "azure-msi-operator";
/**
 * How long close() waits for the Events in flight before it gives them up: they are best effort, and
 * shutdown must not wait a whole request deadline for an API server that does not answer.
 */
export const CLOSE_GRACE_MS = 2_000;

/** Sink for what the operator reports about an object; the recorder below, or nothing. */
export interface EventSink {
  record(event: ObjectEvent): void;
}

export const NO_EVENTS: EventSink = { record: () => undefined };

/**
 * Records events.k8s.io/v1 Events on the objects the operator acts for, so a developer sees in
 * `kubectl describe` what happened to hers. One per process: the EventCorrelator decides what is
 * written (repeats become a series count, floods are combined and rate-limited); this writes it, best
 * effort: a failed Event is logged, never a reason to fail the work it reports on.
 */
export class EventRecorder implements EventSink {
  private readonly api: EventsV1Api;
  private readonly correlator: EventCorrelator;
  private readonly chains = new WeakMap<EventSeries, Promise<void>>();
  private readonly inflight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  /** Aborted when close() gives up on the writes still in flight. */
  private readonly abort = new AbortController();
  private readonly callOptions = abortable(this.abort.signal);
  private readonly patchOptions = setHeaderOptions("Content-Type", "application/merge-patch+json", this.callOptions);

  constructor(
    kubeConfig: KubeConfig,
    private readonly instance: string,
    private readonly log: Logger,
    private readonly metrics: Metrics | undefined,
    private readonly options: CorrelatorOptions = DEFAULT_CORRELATOR,
    private readonly now: () => number = Date.now,
  ) {
    this.api = new EventsV1Api(apiConfiguration(kubeConfig));
    this.correlator = new EventCorrelator(options, now());
  }

  record(event: ObjectEvent): void {
    const decision = this.correlator.observe(event, this.now());
    if (decision.kind === "dropped") {
      this.metrics?.events.inc({ outcome: "dropped" });
      this.log.debug({ object: describe(event), reason: event.reason }, "Event dropped: over the Event rate limit");
    } else if (decision.kind !== "deferred") this.write(decision.series, decision.kind);
  }

  /** Writes the counts of repeated Events now and then; the timer does not keep the process alive. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.flush(), Math.max(1_000, Math.min(60_000, this.options.refreshMs / 2)));
    this.timer.unref();
  }

  /** The series counts that are due, as far as the rate limit allows. */
  flush(): void {
    for (const series of this.correlator.due(this.now())) this.write(series, "patch");
  }

  /**
   * Stops the timer, writes the counts that are due and waits for the writes in flight (at shutdown,
   * and before a one-shot sync exits), at most `graceMs` or until `signal` aborts: then they are
   * aborted, logged as failed, and close() resolves.
   */
  async close(graceMs = CLOSE_GRACE_MS, signal?: AbortSignal): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
    if (this.inflight.size === 0) return;
    const giveUp = AbortSignal.any([AbortSignal.timeout(graceMs), ...(signal ? [signal] : [])]);
    const onGiveUp = () => this.abort.abort(new Error(`shutting down: Event writes still in flight after ${graceMs} ms given up`));
    giveUp.addEventListener("abort", onGiveUp, { once: true });
    try {
      // An aborted write settles at once (its failure is logged), so this loop ends soon after giving up.
      while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    } finally {
      giveUp.removeEventListener("abort", onGiveUp);
    }
  }

  private write(series: EventSeries, kind: "create" | "patch"): void {
    const count = series.count;
    const previous = this.chains.get(series) ?? Promise.resolve();
    // One series' writes in order: a patch must not overtake the create it patches.
    const next = previous.then(() => (kind === "create" ? this.create(series, count) : this.patch(series, count)));
    this.chains.set(series, next);
    this.inflight.add(next);
    void next.finally(() => this.inflight.delete(next));
  }

  private async create(series: EventSeries, count: number): Promise<void> {
    const { event } = series;
    const { regarding } = event;
    // As client-go names them: the object's name and a unique suffix (generateName would end in a dot).
    series.name = `${regarding.name}.${this.now().toString(16)}${randomBytes(4).toString("hex")}`;
    const body = {
      metadata: { name: series.name, namespace: regarding.namespace },
      eventTime: new V1MicroTime(series.firstMs),
      ...(count > 1 ? { series: { count, lastObservedTime: new V1MicroTime(series.lastObservedMs) } } : {}),
      regarding,
      type: event.type,
      reason: event.reason,
      note: event.note.slice(0, 1024),
      action: event.action,
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.instance,
    };
    try {
      await this.api.createNamespacedEvent({ namespace: regarding.namespace, body }, this.callOptions);
      this.metrics?.events.inc({ outcome: "created" });
    } catch (error) {
      this.failed(series, error);
    }
  }

  private async patch(series: EventSeries, count: number): Promise<void> {
    if (!series.name) return this.create(series, count);
    const body = { series: { count, lastObservedTime: new V1MicroTime(series.lastObservedMs) } };
    try {
      await this.api.patchNamespacedEvent({ name: series.name, namespace: series.event.regarding.namespace, body }, this.patchOptions);
      this.metrics?.events.inc({ outcome: "patched" });
    } catch (error) {
      // The API server drops Events after its --event-ttl (1 h by default): then it is created again, with its count.
      if (statusCode(error) === 404) return this.create(series, count);
      this.failed(series, error);
    }
  }

  private failed(series: EventSeries, error: unknown): void {
    this.correlator.failed(series);
    this.metrics?.events.inc({ outcome: "failed" });
    this.log.warn({ object: describe(series.event), reason: series.event.reason, err: kubeErrorMessage(error) }, "could not record an Event");
  }
}

function describe(event: ObjectEvent): string {
  const { regarding } = event;
  return regarding.kind === "Namespace" ? `Namespace ${regarding.name}` : `${regarding.kind} ${regarding.namespace}/${regarding.name}`;
}
