import { readFileSync } from "node:fs";
import type { AdmissionReview } from "./admission.js";

/** AdmissionReview fixtures kept as data beside the webhook (a fresh copy per call, safe to modify). */
export function loadReview(name: string): AdmissionReview {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), "utf8")) as AdmissionReview;
}
