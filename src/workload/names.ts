import { createHash } from "node:crypto";

/** The audience Azure Workload Identity exchanges tokens for. */
export const FIC_AUDIENCE = "api://AzureADTokenExchange";

/** Azure's rule for a federated identity credential name. */
const VALID_FIC_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** This cluster's default name in FIC names: a short digest of its issuer (stable, valid, distinct per cluster). */
export function clusterNameFor(issuer: string): string {
  return sha256(issuer).slice(0, 10);
}

export function serviceAccountSubject(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/**
 * The FIC name for one ServiceAccount: `<cluster>_<namespace>_<name>` when that is a valid FIC name
 * (neither part can hold an underscore, so it is unambiguous), else `<cluster>_<digest>`. Both start
 * with `<cluster>_`, which is how this cluster knows its own FICs among everyone else's.
 */
export function ficName(cluster: string, namespace: string, name: string): string {
  const readable = `${cluster}_${namespace}_${name}`;
  return VALID_FIC_NAME.test(readable) ? readable : `${cluster}_${sha256(`${namespace}/${name}`).slice(0, 24)}`;
}

export function ownedFicPrefix(cluster: string): string {
  return `${cluster}_`;
}
