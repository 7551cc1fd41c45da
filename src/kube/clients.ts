import { Agent, type AgentOptions } from "node:https";
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  EventsV1Api,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  Observable,
  ResponseContext,
  ServerConfiguration,
  WellKnownApi,
  wrapHttpLibrary,
  type Configuration,
  type ConfigurationOptions,
  type HttpLibrary,
  type ObservableMiddleware,
  type RequestContext,
  type SecurityAuthentication,
} from "@kubernetes/client-node";

export interface KubeClients {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  admission: AdmissionregistrationV1Api;
  authentication: AuthenticationV1Api;
  events: EventsV1Api;
  wellKnown: WellKnownApi;
  /** Reads only (`migrate` finds the Deployment or CronJob that owns a pod). */
  apps: AppsV1Api;
  batch: BatchV1Api;
}

/**
 * How long any Kubernetes request may take, answer and body included, unless its caller set a
 * shorter deadline (the Lease's renew deadline). A connection whose packets are dropped, not reset,
 * would otherwise hold its caller forever: TCP never tells. client-go's default client has none
 * either, but every controller passes a context with one; here it is the one place all requests pass.
 */
export const REQUEST_TIMEOUT_MS = 30_000;

/** A Kubernetes request that got no (complete) answer within its deadline; retryable, like a network error. */
export class RequestTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = "RequestTimeoutError";
  }
}

/**
 * Per-call options: the request is also given up the moment `signal` aborts (a leadership term that
 * ended, the elector's renew deadline, shutdown), with the signal's reason as its error.
 */
export function abortable(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [
      {
        pre: (context) => {
          const earlier = context.getSignal();
          context.setSignal(earlier ? AbortSignal.any([earlier, signal]) : signal);
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: "append",
  };
}

/**
 * client-node's fetch with a deadline on every request: from sending until the body is read, so a
 * server that answers the headers and then goes silent cannot hold the caller either.
 */
export function deadlineHttp(timeoutMs: number, inner: HttpLibrary = new IsomorphicFetchHttpLibrary()): HttpLibrary {
  return wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const what = `${request.getHttpMethod()} ${new URL(request.getUrl()).pathname}`;
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(new RequestTimeoutError(what, timeoutMs)), timeoutMs);
      const caller = request.getSignal();
      request.setSignal(caller ? AbortSignal.any([caller, deadline.signal]) : deadline.signal);
      // node-fetch rejects with its own AbortError whatever the reason: say which deadline it was.
      const why = (error: unknown): unknown => (deadline.signal.aborted ? deadline.signal.reason : caller?.aborted ? caller.reason : error);
      const settled = () => clearTimeout(timer);
      let response: ResponseContext;
      try {
        response = await inner.send(request).toPromise();
      } catch (error) {
        settled();
        throw why(error);
      }
      const read = <T>(body: () => Promise<T>) =>
        body().then(
          (value) => (settled(), value),
          (error: unknown) => {
            settled();
            throw why(error);
          },
        );
      return new ResponseContext(response.httpStatusCode, response.headers, {
        text: () => read(() => response.body.text()),
        binary: () => read(() => response.body.binary()),
      });
    },
  });
}

/** --kubeconfig when given, else KUBECONFIG / ~/.kube/config / in-cluster, as client-go does. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (path) kubeConfig.loadFromFile(path);
  else kubeConfig.loadFromDefault();
  return kubeConfig;
}

/** Idle pooled connections are closed after this, before an API server or load balancer drops them silently. */
export const IDLE_CONNECTION_MS = 30_000;

const TLS_FIELDS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;

/**
 * client-node builds a new https.Agent for every API request (kubernetes-client/javascript#2893),
 * so each request opens its own TLS connection with its own TLS context: a 12,000-object sync made
 * 12,000 handshakes, and their native memory stayed until V8 got round to collecting the agents.
 * This keeps one keep-alive agent for as long as the TLS settings (CA, client certificate) stay the
 * same; credentials that change (a rotated token or certificate) are still read for every request.
 * Proxy agents are left as client-node makes them.
 */
export function pooledAuthentication(kubeConfig: KubeConfig): SecurityAuthentication {
  let pooled: { key: string; agent: Agent } | undefined;
  return {
    getName: () => "kubeconfig authentication, pooled connections",
    async applySecurityAuthentication(context: RequestContext) {
      await kubeConfig.applySecurityAuthentication(context);
      const fresh = context.getAgent();
      if (!(fresh instanceof Agent) || fresh.constructor !== Agent) return;
      const key = TLS_FIELDS.map((field) => JSON.stringify(fresh.options[field] ?? "")).join("\0");
      // The agent of older settings is dropped, not destroyed: requests on it finish, its idle sockets time out.
      if (pooled?.key !== key) pooled = { key, agent: new Agent({ ...tlsOptions(fresh.options), keepAlive: true, timeout: IDLE_CONNECTION_MS }) };
      context.setAgent(pooled.agent);
    },
  };
}

function tlsOptions(options: AgentOptions): AgentOptions {
  return Object.fromEntries(TLS_FIELDS.filter((field) => options[field] !== undefined).map((field) => [field, options[field]]));
}

/** What KubeConfig.makeApiClient builds, with pooled connections and a deadline on every request. */
export function apiConfiguration(kubeConfig: KubeConfig, timeoutMs = REQUEST_TIMEOUT_MS): Configuration {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  return createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: pooledAuthentication(kubeConfig) },
    httpApi: deadlineHttp(timeoutMs),
  });
}

export function kubeClients(kubeConfig: KubeConfig, timeoutMs = REQUEST_TIMEOUT_MS): KubeClients {
  const configuration = apiConfiguration(kubeConfig, timeoutMs);
  return {
    kubeConfig,
    core: new CoreV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    coordination: new CoordinationV1Api(configuration),
    admission: new AdmissionregistrationV1Api(configuration),
    authentication: new AuthenticationV1Api(configuration),
    events: new EventsV1Api(configuration),
    wellKnown: new WellKnownApi(configuration),
    apps: new AppsV1Api(configuration),
    batch: new BatchV1Api(configuration),
  };
}

/** Who the API server says we are (right in-cluster, with a kubeconfig, and under impersonation). */
export async function whoAmI(authentication: AuthenticationV1Api): Promise<string> {
  const review = await authentication.createSelfSubjectReview({ body: {} });
  const username = review.status?.userInfo?.username;
  if (!username) throw new Error("SelfSubjectReview returned no username");
  return username;
}
