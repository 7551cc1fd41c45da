import { hostname } from "node:os";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { App } from "./app.js";
import type { SdkRetryOptions } from "./azure/clients.js";
import { resolveEnvironment } from "./azure/environment.js";
import { lazyAzure } from "./azure/lazy.js";
import { rateLimitReadings, type AzureRequestInfo } from "./azure/observe.js";
import type { SubscriptionListing } from "./azure/types.js";
import type { Config } from "./config/config.js";
import { loadKubeConfig } from "./kube/clients.js";
import { createLogger } from "./log.js";
import { azureRmOptionsFromEnv, Metrics } from "./metrics/metrics.js";

export interface OperatorOverrides {
  kubeConfig?: KubeConfig;
  log?: Logger;
  azureRetry?: Partial<SdkRetryOptions>;
  /** How long one Azure attempt may take (tests shorten it to provoke and bound slow answers). */
  azureAttemptTimeoutMs?: number;
  watchTimeoutSeconds?: number;
  certCheckIntervalMs?: number;
  /** What to do when a server cannot listen once its certificate arrived (main: exit non-zero). */
  onFatal?: (error: Error) => void;
}

/** Feeds azurerm_api_request and azurerm_api_ratelimit from every Azure attempt. */
export function recordAzureRequest(metrics: Metrics, info: AzureRequestInfo): void {
  metrics.observeAzureRequest(
    {
      apiEndpoint: info.apiEndpoint,
      routingRegion: info.routingRegion ?? "",
      subscriptionID: info.subscriptionId ?? "",
      tenantID: info.tenantId ?? "",
      resourceProvider: info.resourceProvider ?? "",
      method: info.method.toLowerCase(),
      statusCode: String(info.statusCode),
    },
    info.durationMs / 1000,
  );
  for (const reading of rateLimitReadings(info.rateLimitHeaders)) {
    metrics.azureRatelimit?.set(
      { apiEndpoint: info.apiEndpoint, subscriptionID: info.subscriptionId ?? "", tenantID: info.tenantId ?? "", scope: reading.scope, type: reading.type },
      reading.remaining,
    );
  }
}

/**
 * Everything `azure-msi-operator` is, built from one Config: logger, metrics registry, Azure
 * listing through the real SDK (loaded on first use), Kubernetes clients and the App. Tests build several in one process.
 */
export async function createOperator(
  config: Config,
  env: Readonly<Record<string, string | undefined>>,
  overrides: OperatorOverrides = {},
): Promise<{ app: App; metrics: Metrics; log: Logger }> {
  // The read-only commands' output is stdout (JSON with --output=json), so their logs go to stderr.
  const log = overrides.log ?? createLogger(config.log, config.command === "diff" || config.command === "audit" || config.command === "migrate" ? 2 : 1);
  const azurerm = azureRmOptionsFromEnv(env);
  if (!azurerm.ok) throw new Error(azurerm.error);
  const metrics = new Metrics({ azurerm: azurerm.options });
  metrics.syncInterval.set(config.sync.intervalMs / 1000);
  const environment = await resolveEnvironment(config.azure.environment, env).catch((error: unknown) => {
    throw new Error(`--azure.environment (AZURE_ENVIRONMENT): ${(error as Error).message}`);
  });
  // Loaded when the Lease holder first lists Azure: a follower never does.
  const azure = lazyAzure({
    environment,
    // Azure's activity log (and the tests' fake) can then tell which replica wrote.
    userAgent: `azure-msi-operator (${config.instance.pod ?? hostname()})`,
    observer: (info) => recordAzureRequest(metrics, info),
    ...(overrides.azureRetry ? { retry: overrides.azureRetry } : {}),
    ...(overrides.azureAttemptTimeoutMs ? { attemptTimeoutMs: overrides.azureAttemptTimeoutMs } : {}),
  });
  const listAzure = async (signal?: AbortSignal): Promise<SubscriptionListing[]> => {
    const started = Date.now();
    const listings = await azure.listManagedIdentities({ subscriptionIds: config.azure.subscriptions, ...(signal ? { abortSignal: signal } : {}) });
    for (const listing of listings) {
      const subscription = listing.subscriptionId.toLowerCase();
      metrics.syncDuration.set({ subscription }, listing.durationMs / 1000);
      metrics.syncTime.set({ subscription }, Date.now() / 1000);
      if (!listing.complete) log.error({ subscription, err: listing.error?.message }, "Azure listing incomplete");
      for (const skipped of listing.skipped) log.warn({ subscription, item: skipped.id, reason: skipped.reason }, "Azure item is not a usable MSI");
    }
    log.info(
      {
        subscriptions: listings.length,
        identities: listings.reduce((sum, l) => sum + l.identities.length, 0),
        incomplete: listings.filter((l) => !l.complete).length,
        durationMs: Date.now() - started,
      },
      "Azure listing done",
    );
    return listings;
  };
  const app = new App({
    config,
    ...(config.workloadIdentity.enable ? { ficApi: azure.fic } : {}),
    kubeConfig: overrides.kubeConfig ?? loadKubeConfig(config.kubernetes.kubeconfig),
    metrics,
    log,
    listAzure,
    ...(overrides.watchTimeoutSeconds ? { watchTimeoutSeconds: overrides.watchTimeoutSeconds } : {}),
    ...(overrides.certCheckIntervalMs ? { certCheckIntervalMs: overrides.certCheckIntervalMs } : {}),
    ...(overrides.onFatal ? { onFatal: overrides.onFatal } : {}),
  });
  return { app, metrics, log };
}
