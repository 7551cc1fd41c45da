{{/*
The chart is the source of truth for manifests/base/ (`npm run manifests` renders it with these
defaults and leaves out the two labels that say Helm manages an object: kubectl applies manifests/).
*/}}

{{/* The app.kubernetes.io/name label (nameOverride; the chart's name by default). */}}
{{- define "amo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "amo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "amo.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "amo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Every selector of the chart (the Deployment's, the Services', the PDB's, the NetworkPolicy's, the
monitors'): the release instance is in it, so two releases never select each other's pods. The
Deployment's selector is immutable: CHANGELOG.md's upgrade notes say how to change it.
*/}}
{{- define "amo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "amo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The labels of every object the chart makes (and of the pods): Helm's recommended ones and commonLabels. */}}
{{- define "amo.labels" -}}
helm.sh/chart: {{ include "amo.chart" . }}
{{ include "amo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The ServiceAccount the operator runs as (serviceAccount.name, else the full name). Without
serviceAccount.create it is yours, and must be named: the RBAC and the webhooks' skip-operator
matchCondition are bound to it.
*/}}
{{- define "amo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "amo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required with serviceAccount.create=false: the ServiceAccount the operator runs as, which the RBAC and the webhooks' matchConditions name" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The operator's own user as the API server names it (what its SelfSubjectReview returns at start-up):
the Deployment runs as this ServiceAccount in the release namespace.
*/}}
{{- define "amo.operatorUser" -}}system:serviceaccount:{{ .Release.Namespace }}:{{ include "amo.serviceAccountName" . }}{{- end -}}

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

{{/* What the ServiceMonitor selects: the metrics Service only (the webhook Service has no component label). */}}
{{- define "amo.metricsServiceSelector" -}}
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
