{{/* Names are cut to 63 characters: label values and DNS labels allow no more. */}}
{{- define "kontinuum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kontinuum.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Cluster-scoped objects carry the namespace too: two releases of the same
name in different namespaces must not share a ClusterRole. */}}
{{- define "kontinuum.clusterName" -}}
{{- printf "%s-%s" (include "kontinuum.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "kontinuum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kontinuum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object, without a component. */}}
{{- define "kontinuum.baseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kontinuum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kontinuum
{{- end }}

{{- define "kontinuum.labels" -}}
{{ include "kontinuum.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kontinuum.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "kontinuum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kontinuum.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kontinuum.claimName" -}}
{{- default (printf "%s-data" (include "kontinuum.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* The URL workers dial: the Service's api port, by its in-cluster DNS name. */}}
{{- define "kontinuum.workerServer" -}}
{{- printf "http://%s.%s.svc:7070" (include "kontinuum.fullname" .) .Release.Namespace }}
{{- end }}

{{/* ServiceMonitor: on when asked, or on "auto" when the cluster serves the
Prometheus Operator's API. */}}
{{- define "kontinuum.finalizerPolicy" -}}
{{- $on := .Values.finalizerPolicy.enabled }}
{{- if or (eq (toString $on) "true") (and (eq (toString $on) "auto") (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy")) }}true{{ end }}
{{- end }}

{{- define "kontinuum.serviceMonitor" -}}
{{- $on := .Values.serviceMonitor.enabled }}
{{- if or (eq (toString $on) "true") (and (eq (toString $on) "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* Whole seconds of a duration written as in manifests (90s, 2m, 1h30m,
500ms rounds down), for fields that take a number. */}}
{{- define "kontinuum.seconds" -}}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" . -1 }}
{{- $n := float64 (regexFind "^[0-9]+(\\.[0-9]+)?" .) }}
{{- $unit := regexFind "(ms|s|m|h)$" . }}
{{- if eq $unit "ms" }}{{ $total = addf $total (divf $n 1000) }}
{{- else if eq $unit "s" }}{{ $total = addf $total $n }}
{{- else if eq $unit "m" }}{{ $total = addf $total (mulf $n 60) }}
{{- else }}{{ $total = addf $total (mulf $n 3600) }}{{ end }}
{{- end }}
{{- floor $total | int }}
{{- end }}
