import { Agent, type AgentOptions } from "node:https";
import {
  AdmissionregistrationV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  KubeConfig,
  ServerConfiguration,
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

export function kubeClients(kubeConfig: KubeConfig): KubeClients {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  // What KubeConfig.makeApiClient builds, with pooled connections.
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: pooledAuthentication(kubeConfig) },
  });
  return {
    kubeConfig,
    core: new CoreV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    coordination: new CoordinationV1Api(configuration),
    admission: new AdmissionregistrationV1Api(configuration),
    authentication: new AuthenticationV1Api(configuration),
  };
}

/** Who the API server says we are (right in-cluster, with a kubeconfig, and under impersonation). */
export async function whoAmI(authentication: AuthenticationV1Api): Promise<string> {
  const review = await authentication.createSelfSubjectReview({ body: {} });
  const username = review.status?.userInfo?.username;
  if (!username) throw new Error("SelfSubjectReview returned no username");
  return username;
}
