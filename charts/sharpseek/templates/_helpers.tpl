{{/* Names and labels of the sharpseek chart. */}}
{{- define "sharpseek.fullname" -}}
{{- printf "%s-sharpseek" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "sharpseek.name" -}}
{{- printf "%s-%s" (include "sharpseek.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: {"root": $, "component": "frontend"}. */}}
{{- define "sharpseek.selectorLabels" -}}
app.kubernetes.io/name: sharpseek
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sharpseek.labels" -}}
{{ include "sharpseek.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "sharpseek.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{- define "sharpseek.appSecret" -}}
{{- .Values.secrets.existingAppSecret | default (printf "%s-app" (include "sharpseek.fullname" .)) -}}
{{- end -}}

{{- define "sharpseek.infraSecret" -}}
{{- .Values.secrets.existingInfraSecret | default (printf "%s-infra" (include "sharpseek.fullname" .)) -}}
{{- end -}}

{{- define "sharpseek.configMap" -}}
{{- printf "%s-config" (include "sharpseek.fullname" .) -}}
{{- end -}}

{{/* Endpoints: in-cluster Services or external ones, by values. */}}
{{- define "sharpseek.qdrantUrl" -}}
{{- if .Values.qdrant.external.enabled -}}
{{- required "qdrant.external.url is required when qdrant.external.enabled" .Values.qdrant.external.url -}}
{{- else -}}
{{- printf "http://%s:6333" (include "sharpseek.name" (dict "root" . "component" "qdrant")) -}}
{{- end -}}
{{- end -}}

{{- define "sharpseek.minioEndpoint" -}}
{{- if .Values.minio.external.enabled -}}
{{- required "minio.external.endpoint is required when minio.external.enabled" .Values.minio.external.endpoint -}}
{{- else -}}
{{- printf "%s:9000" (include "sharpseek.name" (dict "root" . "component" "minio")) -}}
{{- end -}}
{{- end -}}

{{- define "sharpseek.minioSecure" -}}
{{- if .Values.minio.external.enabled }}{{ .Values.minio.external.secure }}{{ else }}false{{ end -}}
{{- end -}}

{{- define "sharpseek.postgresHost" -}}
{{- if .Values.postgresql.external.enabled -}}
{{- required "postgresql.external.host is required when postgresql.external.enabled" .Values.postgresql.external.host -}}
{{- else -}}
{{- include "sharpseek.name" (dict "root" . "component" "postgresql") -}}
{{- end -}}
{{- end -}}

{{- define "sharpseek.prefectApiUrl" -}}
{{- printf "http://%s:4200/api" (include "sharpseek.name" (dict "root" . "component" "prefect-server")) -}}
{{- end -}}

{{/* The Dask scheduler of the chart (dask.enabled), as flow runs and workers dial it. */}}
{{- define "sharpseek.daskAddress" -}}
{{- printf "tcp://%s:8786" (include "sharpseek.name" (dict "root" . "component" "dask-scheduler")) -}}
{{- end -}}

{{- define "sharpseek.torchserveHost" -}}
{{- include "sharpseek.name" (dict "root" . "component" "torchserve") -}}
{{- end -}}

{{/* A secret value: the given one, else the one in the cluster, else a new random one. */}}
{{- define "sharpseek.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if .value -}}
{{- .value -}}
{{- else if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/* envFrom of every pod that runs the library. */}}
{{- define "sharpseek.envFrom" -}}
- configMapRef:
    name: {{ include "sharpseek.configMap" . }}
- secretRef:
    name: {{ include "sharpseek.appSecret" . }}
{{- end -}}
