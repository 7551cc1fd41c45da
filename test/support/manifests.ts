import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { loadAllYaml, loadYaml, type KubernetesObject, type V1Deployment } from "@kubernetes/client-node";
import jsonpatch from "fast-json-patch";
import { OPERATOR_NAMESPACE } from "../controlplane/controlplane.js";

export const MANIFESTS_ROOT = fileURLToPath(new URL("../../manifests/", import.meta.url));
/** The operator's objects (`kubectl apply -k manifests/` builds on this directory). */
export const MANIFESTS_DIR = `${MANIFESTS_ROOT}base/`;
/** `kubectl apply -k manifests/overlays/workload-identity/`: the base plus the ServiceAccount webhooks and the mode's switch. */
export const WORKLOAD_IDENTITY_OVERLAY = `${MANIFESTS_ROOT}overlays/workload-identity/`;

export async function loadManifest(file: string): Promise<KubernetesObject[]> {
  return loadAllYaml(await readFile(`${MANIFESTS_DIR}${file}`, "utf8")) as KubernetesObject[];
}

interface WebhookEntry {
  clientConfig: { service?: { path?: string }; url?: string; caBundle?: string };
}

/**
 * The shipped webhook configurations (manifests/base/webhooks.yaml unless `objects` are given, e.g.
 * an overlay's as kustomize rendered them) with each Service reference replaced by a URL on
 * 127.0.0.1, which is how a local API server reaches an operator running outside the cluster.
 */
export async function webhookConfigurationsFor(baseUrl: string, objects?: KubernetesObject[]): Promise<KubernetesObject[]> {
  objects = objects ? structuredClone(objects) : await loadManifest("webhooks.yaml");
  for (const object of objects) {
    for (const webhook of (object as KubernetesObject & { webhooks?: WebhookEntry[] }).webhooks ?? []) {
      const path = webhook.clientConfig.service?.path ?? "/";
      webhook.clientConfig = { url: `${baseUrl}${path}` };
    }
  }
  return objects;
}

/** Env of the Deployment's container as the pod would see it, downward API values filled in. */
export function podEnv(deployment: V1Deployment, pod = "azure-msi-operator-abc12"): Record<string, string> {
  const fieldValues: Record<string, string> = { "spec.nodeName": "node-1", "metadata.namespace": OPERATOR_NAMESPACE, "metadata.name": pod };
  const env: Record<string, string> = {};
  for (const variable of deployment.spec?.template.spec?.containers[0]?.env ?? []) {
    const path = variable.valueFrom?.fieldRef?.fieldPath;
    env[variable.name] = path ? (fieldValues[path] ?? "") : (variable.value ?? "");
  }
  return env;
}

/** The shipped Deployment's env, as the pod named `pod` sees it. */
export async function shippedEnv(pod: string): Promise<Record<string, string>> {
  const deployment = (await loadManifest("deployment.yaml")).find((object) => object.kind === "Deployment") as V1Deployment;
  return podEnv(deployment, pod);
}

interface Json6902Patch {
  path: string;
  target?: { group?: string; version?: string; kind: string; name: string };
}

/**
 * The base's objects with an overlay's JSON6902 patches applied, as kustomize applies them, for
 * tests that run without kubectl (the e2e test holds this against `kubectl kustomize`). Anything
 * else in the kustomization is refused by name, so a later change cannot be silently skipped.
 */
export async function withOverlayPatches(objects: readonly KubernetesObject[], overlayDir: string): Promise<KubernetesObject[]> {
  const kustomization = loadYaml<{ resources?: string[]; patches?: Json6902Patch[]; [field: string]: unknown }>(
    await readFile(`${overlayDir}kustomization.yaml`, "utf8"),
  );
  const unsupported = Object.keys(kustomization).filter((field) => !["apiVersion", "kind", "resources", "patches"].includes(field));
  if (unsupported.length > 0) throw new Error(`${overlayDir}kustomization.yaml: ${unsupported.join(", ")} not supported here (only JSON6902 patches)`);
  const copy = structuredClone(objects) as KubernetesObject[];
  for (const patch of kustomization.patches ?? []) {
    // A target outside `objects` (they may be one file of the base) is left for the test that has it.
    const index = copy.findIndex((object) => object.kind === patch.target?.kind && object.metadata?.name === patch.target?.name);
    const target = copy[index];
    if (!target) continue;
    const operations = loadYaml<jsonpatch.Operation[]>(await readFile(`${overlayDir}${patch.path}`, "utf8"));
    if (!Array.isArray(operations)) throw new Error(`${patch.path}: not a JSON6902 patch (a list of operations); only those are applied here`);
    copy[index] = jsonpatch.applyPatch(target, operations, true, false).newDocument;
  }
  return copy;
}
