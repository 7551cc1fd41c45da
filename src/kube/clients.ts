import { AdmissionregistrationV1Api, AuthenticationV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";

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

export function kubeClients(kubeConfig: KubeConfig): KubeClients {
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    custom: kubeConfig.makeApiClient(CustomObjectsApi),
    coordination: kubeConfig.makeApiClient(CoordinationV1Api),
    admission: kubeConfig.makeApiClient(AdmissionregistrationV1Api),
    authentication: kubeConfig.makeApiClient(AuthenticationV1Api),
  };
}

/** Who the API server says we are (right in-cluster, with a kubeconfig, and under impersonation). */
export async function whoAmI(authentication: AuthenticationV1Api): Promise<string> {
  const review = await authentication.createSelfSubjectReview({ body: {} });
  const username = review.status?.userInfo?.username;
  if (!username) throw new Error("SelfSubjectReview returned no username");
  return username;
}
