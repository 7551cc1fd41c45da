// Kubernetes' own name and label rules (k8s.io/apimachinery/pkg/util/validation), so an invalid
// value is caught before it reaches the API server and only that MSI is skipped.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Returns why `value` is not a valid object name (DNS-1123 subdomain), or undefined. */
export function invalidObjectName(value: string): string | undefined {
  if (value === "") return "must not be empty";
  if (value.length > 253) return `must be no more than 253 characters (is ${value.length})`;
  if (!DNS1123_SUBDOMAIN.test(value))
    return "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  return undefined;
}

/** Returns why `value` is not a valid namespace name (DNS-1123 label), or undefined. */
export function invalidNamespaceName(value: string): string | undefined {
  if (value === "") return "must not be empty";
  if (value.length > 63) return `must be no more than 63 characters (is ${value.length})`;
  if (!DNS1123_LABEL.test(value)) return "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
  return undefined;
}

/** Returns why `value` is not a valid label value, or undefined. */
export function invalidLabelValue(value: string): string | undefined {
  if (value.length > 63) return `must be no more than 63 characters (is ${value.length})`;
  if (!LABEL_VALUE.test(value))
    return "must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  return undefined;
}

/** Returns why `key` is not a valid label or annotation key (optional DNS prefix + '/' + name), or undefined. */
export function invalidLabelKey(key: string): string | undefined {
  const parts = key.split("/");
  if (parts.length > 2) return "must have at most one '/'";
  const name = parts.length === 2 ? parts[1]! : parts[0]!;
  const prefix = parts.length === 2 ? parts[0]! : undefined;
  if (prefix !== undefined) {
    if (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) return `prefix "${prefix}" must be a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63) return "name part must be 1 to 63 characters";
  if (!QUALIFIED_NAME.test(name))
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  return undefined;
}
