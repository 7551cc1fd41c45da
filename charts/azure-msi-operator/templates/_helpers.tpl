{{/*
The chart is the source of truth for manifests/base/ (`npm run manifests` renders it with these
defaults), so nothing here adds Helm-only labels: `helm install` adds its own ownership metadata.
*/}}

{{- define "amo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "azure-msi-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-azure-msi-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Deployment's selector: immutable, so one label that kustomize installs share. */}}
{{- define "amo.selectorLabels" -}}
app.kubernetes.io/name: azure-msi-operator
{{- end -}}

{{/*
The operator's own user as the API server names it (what its SelfSubjectReview returns at start-up):
the Deployment runs as the ServiceAccount of this name in the release namespace.
*/}}
{{- define "amo.operatorUser" -}}system:serviceaccount:{{ .Release.Namespace }}:{{ include "amo.fullname" . }}{{- end -}}

{{/* A CEL list of string literals, ['a', 'b']: values.schema.json refuses quotes, backslashes and whitespace in these names. */}}
{{- define "amo.celList" -}}[{{ range $i, $name := . }}{{ if $i }}, {{ end }}{{ squote $name }}{{ end }}]{{- end -}}

{{- define "amo.webhookService" -}}{{ include "amo.fullname" . }}-webhook{{- end -}}
{{- define "amo.leaseName" -}}{{ include "amo.fullname" . }}-leader{{- end -}}
{{- define "amo.selfManagedSecret" -}}{{ include "amo.fullname" . }}-webhook-tls{{- end -}}
{{- define "amo.certManagerSecret" -}}{{ include "amo.fullname" . }}-webhook-cert{{- end -}}

{{/* "true" when the serving certificate is brought (an existing Secret or cert-manager's): the operator then manages none. */}}
{{- define "amo.byoCert" -}}
{{- if or .Values.tls.existingSecret .Values.tls.certManager.enabled -}}true{{- end -}}
{{- end -}}

{{- define "amo.byoCertSecret" -}}
{{- if .Values.tls.certManager.enabled -}}
{{- if .Values.tls.existingSecret -}}
{{- fail "tls.existingSecret and tls.certManager.enabled: choose one (cert-manager writes its own Secret)" -}}
{{- end -}}
{{- include "amo.certManagerSecret" . -}}
{{- else -}}
{{- .Values.tls.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "amo.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repository = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repository -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The webhook clientConfig (the Service, in the release namespace) and, with a brought certificate
whose CA cert-manager does not inject, the caBundle from tls.caBundle.
*/}}
{{- define "amo.clientConfig" -}}
{{- $root := index . 0 -}}
clientConfig:
  service:
    name: {{ include "amo.webhookService" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ index . 1 }}
    port: 443
  {{- if and $root.Values.tls.existingSecret $root.Values.tls.caBundle }}
  caBundle: {{ $root.Values.tls.caBundle }}
  {{- end }}
{{- end -}}

{{/* On both webhook configurations: with cert-manager, its cainjector keeps the caBundle right. */}}
{{- define "amo.webhookAnnotations" -}}
{{- if .Values.tls.certManager.enabled }}
  annotations:
    cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "amo.fullname" . }}-webhook
{{- end }}
{{- end -}}

{{/* The metrics Service's labels, which the ServiceMonitor selects (the webhook Service has only the name label). */}}
{{- define "amo.metricsServiceLabels" -}}
{{ include "amo.selectorLabels" . }}
app.kubernetes.io/component: metrics
{{- end -}}

{{/*
A PodMonitor's or ServiceMonitor's spec fields for AKS with Azure Managed Prometheus (the argument is
the apiGroup): its add-on drops targets whose labels exceed these; the values Azure's template uses.
*/}}
{{- define "amo.azmonitoringLimits" -}}
{{- if eq . "azmonitoring.coreos.com" }}
  labelLimit: 63
  labelNameLengthLimit: 511
  labelValueLengthLimit: 1023
{{- end }}
{{- end -}}
