import type { AdmissionApiVersion, Decision } from "./admission.js";

const MAX_WARNING_LENGTH = 256;

export interface AdmissionResponseBody {
  apiVersion: AdmissionApiVersion;
  kind: "AdmissionReview";
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; message: string; reason?: string };
    patchType?: "JSONPatch";
    patch?: string;
    warnings?: string[];
  };
}

/** The AdmissionReview answer: same apiVersion as asked, the request's uid, a base64 JSONPatch. */
export function admissionResponse(apiVersion: AdmissionApiVersion, uid: string, decision: Decision): AdmissionResponseBody {
  const response: AdmissionResponseBody["response"] = { uid, allowed: decision.allowed };
  if (!decision.allowed) {
    response.status = {
      code: decision.code ?? 403,
      message: decision.message ?? "denied",
      reason: decision.code === 403 || decision.code === undefined ? "Forbidden" : undefined,
    };
  }
  if (decision.patch && decision.patch.length > 0) {
    response.patchType = "JSONPatch";
    response.patch = Buffer.from(JSON.stringify(decision.patch)).toString("base64");
  }
  if (decision.warnings && decision.warnings.length > 0) response.warnings = decision.warnings.map(shortWarning);
  return { apiVersion, kind: "AdmissionReview", response };
}

/** The API server drops over-long warnings; keep them short and printable. */
function shortWarning(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, " ");
  return printable.length <= MAX_WARNING_LENGTH ? printable : `${printable.slice(0, MAX_WARNING_LENGTH - 3)}...`;
}
