import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { SubscriptionClient } from "@azure/arm-resources-subscriptions";
import type { ServiceClient } from "@azure/core-client";
import { DefaultAzureCredential, type TokenCredential } from "@azure/identity";
import { isKnownAuthorityHost, type AzureEnvironment } from "./environment.js";
import { observerPolicy, type AzureRequestObserver } from "./observe.js";
import { attemptTimeoutPolicy } from "./timeout.js";

/** The SDK's retry knobs (its defaults: 3 retries, 1 s base delay doubling up to 64 s). */
export interface SdkRetryOptions {
  maxRetries: number;
  retryDelayInMs: number;
  maxRetryDelayInMs: number;
}

export const DEFAULT_SDK_RETRY: SdkRetryOptions = { maxRetries: 4, retryDelayInMs: 1_000, maxRetryDelayInMs: 30_000 };
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 60_000;

export interface AzureClientOptions {
  environment: AzureEnvironment;
  /** Called once per attempt (retries included) of every Resource Manager call. */
  observer?: AzureRequestObserver;
  retry?: Partial<SdkRetryOptions>;
  /** How long one attempt may wait for response headers before it is abandoned and retried. */
  attemptTimeoutMs?: number;
  /** Instead of DefaultAzureCredential (which reads its settings from process.env when built). */
  credential?: TokenCredential;
  /** Put first in every Resource Manager request's User-Agent: which replica sent it (its instance name). */
  userAgent?: string;
}

export interface AzureClients {
  environment: AzureEnvironment;
  credential: TokenCredential;
  subscriptions: SubscriptionClient;
  /** The MSI client bound to one subscription (the SDK binds it at construction); cached. */
  msi(subscriptionId: string): ManagedServiceIdentityClient;
}

/**
 * DefaultAzureCredential for a cloud: client secret env, workload identity or managed identity,
 * against the environment's authority host. For an authority host MSAL has no built-in metadata
 * for (a custom environment file), instance discovery is switched off: otherwise MSAL asks
 * login.microsoftonline.com about the host first, and without that answer every token fails as an
 * "untrusted authority". With it off, MSAL reads `<host>/<tenant>/v2.0/.well-known/openid-configuration`.
 */
export function createCredential(environment: AzureEnvironment, retry: SdkRetryOptions = DEFAULT_SDK_RETRY): TokenCredential {
  return abortableCredential(
    new DefaultAzureCredential({
      authorityHost: environment.activeDirectoryEndpoint,
      disableInstanceDiscovery: !isKnownAuthorityHost(environment.activeDirectoryEndpoint),
      retryOptions: retry,
    }),
  );
}

/**
 * MSAL's token requests do not honour the caller's abort signal: with Entra black-holed, an aborted
 * listing (leadership lost, SIGTERM) would wait for a token that never comes. This gives up waiting
 * when the signal aborts; the token request itself may still finish in the background, but what it
 * was for is not sent (the SDK's transport refuses a request whose signal has aborted).
 */
export function abortableCredential(credential: TokenCredential): TokenCredential {
  return {
    getToken(scopes, options) {
      const signal = options?.abortSignal;
      const token = credential.getToken(scopes, options);
      if (!signal) return token;
      const aborted = () => new Error("token request abandoned: the operation was aborted");
      if (signal.aborted) return Promise.reject(aborted());
      return new Promise((resolve, reject) => {
        const onAbort = () => reject(aborted());
        signal.addEventListener("abort", onAbort, { once: true });
        token.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    },
  };
}

/**
 * The real SDK clients for one cloud. Retries are the SDK's own pipeline policy: 429 and 503 wait
 * for Retry-After (without an upper bound: ARM's word is taken), 5xx and 408 and transport errors
 * back off exponentially, for at most `maxRetries` retries per call.
 */
export function createAzureClients(options: AzureClientOptions): AzureClients {
  const { environment } = options;
  const retry: SdkRetryOptions = { ...DEFAULT_SDK_RETRY, ...options.retry };
  const credential = options.credential ?? createCredential(environment, retry);
  const common = {
    endpoint: environment.resourceManagerEndpoint,
    credentialScopes: [environment.scope],
    retryOptions: retry,
    ...(options.userAgent ? { userAgentOptions: { userAgentPrefix: options.userAgent } } : {}),
  };
  const attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const withPolicies = <C extends ServiceClient>(client: C): C => {
    // After "Sign": inside the retry loop (one call per attempt) and after the bearer token is set,
    // so token acquisition counts neither against the deadline nor as ARM latency.
    // The observer goes first so that it sees a missed deadline as the ETIMEDOUT it becomes.
    if (options.observer) client.pipeline.addPolicy(observerPolicy(options.observer), { afterPhase: "Sign" });
    client.pipeline.addPolicy(attemptTimeoutPolicy(attemptTimeoutMs), { afterPhase: "Sign" });
    return client;
  };
  const msiClients = new Map<string, ManagedServiceIdentityClient>();
  return {
    environment,
    credential,
    subscriptions: withPolicies(new SubscriptionClient(credential, common)),
    msi(subscriptionId) {
      const key = subscriptionId.toLowerCase();
      let client = msiClients.get(key);
      if (!client) msiClients.set(key, (client = withPolicies(new ManagedServiceIdentityClient(credential, subscriptionId, common))));
      return client;
    },
  };
}
