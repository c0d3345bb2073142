{{/* Names ---------------------------------------------------------------- */}}

{{- define "f2f.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "f2f.fullname" -}}
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

{{- define "f2f.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "f2f.selectorLabels" -}}
app.kubernetes.io/name: {{ include "f2f.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "f2f.labels" -}}
helm.sh/chart: {{ include "f2f.chart" . }}
{{ include "f2f.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fridge2fork
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "f2f.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "f2f.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "f2f.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Phase-driven workloads -------------------------------------------------- */}}

{{- define "f2f.worker.enabled" -}}
{{- $v := .Values.worker.enabled }}
{{- if kindIs "bool" $v }}{{ ternary "true" "" $v }}
{{- else if eq .Values.phase "redis" }}true
{{- end }}
{{- end }}

{{- define "f2f.purge.enabled" -}}
{{- $v := .Values.purge.enabled }}
{{- if kindIs "bool" $v }}{{ ternary "true" "" $v }}
{{- else if has .Values.phase (list "postgres" "dual" "redis") }}true
{{- end }}
{{- end }}

{{/* Redis ------------------------------------------------------------------- */}}

{{/* The name Bitnami's chart gives its resources (common.names.fullname of the subchart). */}}
{{- define "f2f.redis.fullname" -}}
{{- if .Values.redis.fullnameOverride }}
{{- .Values.redis.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "redis" .Values.redis.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "bundled", "external", or "" when f2f runs without Redis. */}}
{{- define "f2f.redis.mode" -}}
{{- if .Values.redis.enabled }}bundled
{{- else if or .Values.externalRedis.url .Values.externalRedis.existingSecretUrlKey }}external
{{- end }}
{{- end }}

{{/* Secret and key holding the Redis password, as "name/key", or "" without one. */}}
{{- define "f2f.redis.passwordRef" -}}
{{- if .Values.redis.enabled }}
{{- if .Values.redis.auth.enabled }}
{{- if .Values.redis.auth.existingSecret }}
{{- printf "%s/%s" .Values.redis.auth.existingSecret (default "redis-password" .Values.redis.auth.existingSecretPasswordKey) }}
{{- else }}
{{- printf "%s/redis-password" (include "f2f.redis.fullname" .) }}
{{- end }}
{{- end }}
{{- else if .Values.externalRedis.existingSecretUrlKey }}
{{- else if .Values.externalRedis.existingSecret }}
{{- printf "%s/%s" .Values.externalRedis.existingSecret .Values.externalRedis.existingSecretPasswordKey }}
{{- else if .Values.externalRedis.password }}
{{- printf "%s/redis-password" (include "f2f.fullname" .) }}
{{- end }}
{{- end }}

{{/* F2F_REDIS_URL with $(REDIS_PASSWORD) where the password goes; "" when the URL comes whole from a Secret. */}}
{{- define "f2f.redis.url" -}}
{{- $auth := ternary ":$(REDIS_PASSWORD)@" "" (ne (include "f2f.redis.passwordRef" .) "") }}
{{- if .Values.redis.enabled }}
{{- $host := include "f2f.redis.fullname" . }}
{{- if and (eq .Values.redis.architecture "replication") .Values.redis.sentinel.enabled }}
{{- printf "redis+sentinel://%s%s.%s.svc:26379/%s" $auth $host .Release.Namespace .Values.redis.sentinel.masterSet }}
{{- else }}
{{- printf "redis://%s%s-master.%s.svc:6379/0" $auth $host .Release.Namespace }}
{{- end }}
{{- else if and .Values.externalRedis.url (not .Values.externalRedis.existingSecretUrlKey) }}
{{- $url := .Values.externalRedis.url }}
{{- $parts := splitn "://" 2 $url }}
{{- if contains "@" $parts._1 }}
{{- fail "externalRedis.url must not contain credentials: set externalRedis.password or existingSecret" }}
{{- end }}
{{- if $auth }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" .Values.externalRedis.username }}
{{- else if .Values.externalRedis.username }}
{{- $auth = printf "%s@" .Values.externalRedis.username }}
{{- end }}
{{- printf "%s://%s%s" $parts._0 $auth $parts._1 }}
{{- end }}
{{- end }}

{{/* Configuration ----------------------------------------------------------- */}}

{{- define "f2f.databaseSecretName" -}}
{{- default (include "f2f.fullname" .) .Values.database.existingSecret }}
{{- end }}

{{- define "f2f.databaseSecretKey" -}}
{{- ternary .Values.database.existingSecretKey "database-url" (ne .Values.database.existingSecret "") }}
{{- end }}

{{/* Does the chart own a Secret (database URL or Redis password)? */}}
{{- define "f2f.ownsSecret" -}}
{{- if or (not .Values.database.existingSecret) (and (not .Values.redis.enabled) .Values.externalRedis.password (not .Values.externalRedis.existingSecret)) }}true{{ end }}
{{- end }}

{{- define "f2f.validate" -}}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) }}
{{- fail "set database.url (a PostgreSQL URL) or database.existingSecret" }}
{{- end }}
{{- if and .Values.redis.enabled (or .Values.externalRedis.url .Values.externalRedis.existingSecretUrlKey) }}
{{- fail "choose one Redis: redis.enabled (bundled) or externalRedis, not both" }}
{{- end }}
{{- if and (ne .Values.phase "postgres") (not (include "f2f.redis.mode" .)) }}
{{- fail (printf "phase %s needs Redis: set redis.enabled=true or externalRedis.url" .Values.phase) }}
{{- end }}
{{- if and .Values.redis.enabled .Values.redis.sentinel.enabled (ne .Values.redis.architecture "replication") }}
{{- fail "redis.sentinel.enabled needs redis.architecture=replication" }}
{{- end }}
{{- if and .Values.externalRedis.existingSecretUrlKey (not .Values.externalRedis.existingSecret) }}
{{- fail "externalRedis.existingSecretUrlKey needs externalRedis.existingSecret" }}
{{- end }}
{{- end }}

{{/* The ConfigMap's data: phase-independent F2F_* settings. */}}
{{- define "f2f.configData" -}}
{{- range $name, $value := .Values.config }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Environment of every f2f container. Args: dict "ctx" $ "secret" name "redis" bool. */}}
{{- define "f2f.env" -}}
{{- $ctx := .ctx -}}
- name: F2F_INSTANCE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: F2F_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ ternary $ctx.Values.database.existingSecret .secret (ne $ctx.Values.database.existingSecret "") }}
      key: {{ include "f2f.databaseSecretKey" $ctx }}
{{- if .redis }}
{{- $ref := include "f2f.redis.passwordRef" $ctx }}
{{- if $ref }}
{{- $secretName := index (splitList "/" $ref) 0 }}
{{- if and (not $ctx.Values.redis.enabled) (not $ctx.Values.externalRedis.existingSecret) }}
{{- $secretName = .secret }}
{{- end }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ index (splitList "/" $ref) 1 }}
{{- end }}
{{- if $ctx.Values.externalRedis.existingSecretUrlKey }}
- name: F2F_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $ctx.Values.externalRedis.existingSecret }}
      key: {{ $ctx.Values.externalRedis.existingSecretUrlKey }}
{{- else if include "f2f.redis.mode" $ctx }}
- name: F2F_REDIS_URL
  value: {{ include "f2f.redis.url" $ctx | quote }}
{{- end }}
{{- end }}
{{- with $ctx.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "f2f.envFrom" -}}
- configMapRef:
    name: {{ .configMap }}
{{- with .ctx.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when their configuration changes. */}}
{{- define "f2f.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{- define "f2f.tmpVolume" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- /* The image's declared VOLUME /data (its HOME, and the embedded SQLite default, which the chart
never uses: F2F_DATABASE_URL is PostgreSQL here) is writable in every pod, as under docker/podman. */}}
- name: data
  emptyDir:
    sizeLimit: 16Mi
{{- end }}

{{- define "f2f.tmpMount" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end }}

{{/* The chart Secret's data. */}}
{{- define "f2f.secretData" -}}
{{- if not .Values.database.existingSecret }}
database-url: {{ .Values.database.url | b64enc | quote }}
{{- end }}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.password (not .Values.externalRedis.existingSecret) }}
redis-password: {{ .Values.externalRedis.password | b64enc | quote }}
{{- end }}
{{- end }}

{{- define "f2f.serverSelectorLabels" -}}
{{ include "f2f.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}
