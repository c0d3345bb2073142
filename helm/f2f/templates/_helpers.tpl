{{/* Names ---------------------------------------------------------------- */}}

{{- define "f2f.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release name cleaned exactly as Bitnami's common.names.fullname cleans it (lower case, every
run of characters other than [a-z0-9-] with its neighbouring hyphens turned into one "-"), so
"team.f2f" gives "team-f2f" here and in the redis subchart alike: every reference matches.
*/}}
{{- define "f2f.releaseName" -}}
{{- regexReplaceAll "(-?[^a-z\\d\\-])+-?" (lower .Release.Name) "-" }}
{{- end }}

{{- define "f2f.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- $release := include "f2f.releaseName" . }}
{{- if contains $name $release }}
{{- $release | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $release $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<suffix>" within a length limit (args: list $ suffix max): the prefix is cut, never the suffix. */}}
{{- define "f2f.suffixed" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- $max := index . 2 }}
{{- printf "%s-%s" (include "f2f.fullname" $ctx | trunc (int (sub $max (add1 (len $suffix)))) | trimSuffix "-") $suffix }}
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
{{- $release := include "f2f.releaseName" . }}
{{- if contains $name $release }}
{{- $release | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $release $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The namespace of Bitnami's resources (common.names.namespace of the subchart). */}}
{{- define "f2f.redis.namespace" -}}
{{- default .Release.Namespace .Values.redis.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Bitnami's pod selector labels (common.labels.matchLabels of the subchart). */}}
{{- define "f2f.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ default "redis" .Values.redis.nameOverride | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Container ports of the bundled Redis and Sentinel (Bitnami's defaults when the subchart is absent). */}}
{{- define "f2f.redis.port" -}}
{{- dig "master" "containerPorts" "redis" 6379 .Values.redis }}
{{- end }}

{{- define "f2f.redis.sentinelPort" -}}
{{- dig "sentinel" "containerPorts" "sentinel" 26379 .Values.redis }}
{{- end }}

{{- define "f2f.redis.sentinelMode" -}}
{{- if and .Values.redis.enabled (eq .Values.redis.architecture "replication") .Values.redis.sentinel.enabled }}true{{ end }}
{{- end }}

{{/*
The label Bitnami's NetworkPolicy asks of its clients once `redis.networkPolicy.allowExternal` is
false ("<redis fullname>-client"); f2f's pods that talk to Redis carry it then, and only then.
*/}}
{{- define "f2f.redis.clientLabel" -}}
{{- if and .Values.redis.enabled (not (dig "networkPolicy" "allowExternal" true .Values.redis)) }}
{{- printf "%s-client: \"true\"" (include "f2f.redis.fullname" .) }}
{{- end }}
{{- end }}

{{/* "bundled", "external", or "" when f2f runs without Redis. */}}
{{- define "f2f.redis.mode" -}}
{{- if .Values.redis.enabled }}bundled
{{- else if or .Values.externalRedis.url .Values.externalRedis.existingSecretUrlKey (include "f2f.redis.builtUrl" .) }}external
{{- end }}
{{- end }}

{{/* The external Redis URL built from externalRedis.cluster or externalRedis.sentinel (no password), or "". */}}
{{- define "f2f.redis.builtUrl" -}}
{{- $r := .Values.externalRedis }}
{{- $tls := ternary "rediss" "redis" (default false $r.tls) }}
{{- $nodes := dig "cluster" "nodes" list $r }}
{{- $sentinels := dig "sentinel" "hosts" list $r }}
{{- if $nodes }}
{{- printf "%s+cluster://%s" $tls (join "," $nodes) }}
{{- else if $sentinels }}
{{- printf "%s+sentinel://%s/%s/%d" $tls (join "," $sentinels) (dig "sentinel" "masterSet" "mymaster" $r) (int (dig "sentinel" "db" 0 $r)) }}
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
{{- $ns := include "f2f.redis.namespace" . }}
{{- if include "f2f.redis.sentinelMode" . }}
{{- $port := dig "sentinel" "service" "ports" "sentinel" 26379 .Values.redis }}
{{- printf "redis+sentinel://%s%s.%s.svc:%d/%s" $auth $host $ns (int $port) .Values.redis.sentinel.masterSet }}
{{- else }}
{{- $port := dig "master" "service" "ports" "redis" 6379 .Values.redis }}
{{- printf "redis://%s%s-master.%s.svc:%d/0" $auth $host $ns (int $port) }}
{{- end }}
{{- else if and (or .Values.externalRedis.url (include "f2f.redis.builtUrl" .)) (not .Values.externalRedis.existingSecretUrlKey) }}
{{- $url := default (include "f2f.redis.builtUrl" .) .Values.externalRedis.url }}
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
{{- $sources := 0 }}
{{- range $set := list .Values.externalRedis.url (dig "cluster" "nodes" list .Values.externalRedis) (dig "sentinel" "hosts" list .Values.externalRedis) }}
{{- if $set }}{{ $sources = add1 $sources }}{{ end }}
{{- end }}
{{- if gt (int $sources) 1 }}
{{- fail "externalRedis: give one of url, cluster.nodes or sentinel.hosts" }}
{{- end }}
{{- if and .Values.redis.enabled (or .Values.externalRedis.url .Values.externalRedis.existingSecretUrlKey (include "f2f.redis.builtUrl" .)) }}
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
{{- if and .Values.redis.enabled .Values.redis.auth.enabled (not .Values.redis.auth.existingSecret) (ne (include "f2f.redis.namespace" .) .Release.Namespace) }}
{{- fail (printf "the bundled Redis runs in namespace %s, and f2f's pods cannot read the password Secret Bitnami generates there: create one Secret with the password in both namespaces and set redis.auth.existingSecret" (include "f2f.redis.namespace" .)) }}
{{- end }}
{{- include "f2f.validate.names" . }}
{{- include "f2f.validate.scaling" . }}
{{- include "f2f.validate.shutdown" . }}
{{- include "f2f.validate.egress" . }}
{{- include "f2f.validate.metricsPort" . }}
{{- end }}

{{/* The port of /metrics when it has one of its own (metrics.port, F2F_METRICS_PORT), else "". */}}
{{- define "f2f.metricsPort" -}}
{{- with .Values.metrics.port }}{{ int . }}{{ end }}
{{- end }}

{{/* `f2f serve` refuses F2F_METRICS_PORT equal to its own port: so does the render, before any pod crash-loops. */}}
{{- define "f2f.validate.metricsPort" -}}
{{- $port := include "f2f.metricsPort" . }}
{{- if and $port (eq (int $port) (int .Values.server.port)) }}
{{- fail (printf "metrics.port (%d) is server.port, the API port: give /metrics a port of its own (for example 9090), or leave metrics.port empty to serve /metrics on the API port" (int $port)) }}
{{- end }}
{{- /* The Service exposes it under the same number, beside service.port: two equal ports are refused by the API server. */}}
{{- if and $port (eq (int $port) (int .Values.service.port)) }}
{{- fail (printf "metrics.port (%d) is service.port, and the Service cannot expose two ports with one number: choose another metrics.port or service.port" (int $port)) }}
{{- end }}
{{- end }}

{{/* Service names must be DNS-1035 labels: a letter first, at most 63 characters. */}}
{{- define "f2f.validate.names" -}}
{{- $label := "^[a-z]([-a-z0-9]*[a-z0-9])?$" }}
{{- $full := include "f2f.fullname" . }}
{{- if not (regexMatch $label $full) }}
{{- fail (printf "the resource names of release %q would start with %q, which Kubernetes refuses as a Service name (a letter must come first): set fullnameOverride (and redis.fullnameOverride with the bundled Redis)" .Release.Name $full) }}
{{- end }}
{{- if .Values.redis.enabled }}
{{- $redis := include "f2f.redis.fullname" . }}
{{- /* Bitnami appends "-headless" (9 characters) to its name for a Service without cutting it. */}}
{{- if or (not (regexMatch $label $redis)) (gt (len $redis) 54) }}
{{- fail (printf "the bundled Redis would be named %q: Bitnami's Services (%s-headless) need a name that starts with a letter and has at most 54 characters; set redis.fullnameOverride" $redis $redis) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Server pods the Deployment keeps at the least: its replica count, or the HPA's floor. */}}
{{- define "f2f.minServerPods" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas | int }}{{ else }}{{ .Values.server.replicaCount | int }}{{ end }}
{{- end }}

{{/* An int, or "N%" of $total rounded up (as the disruption controller rounds). Args: list value total. */}}
{{- define "f2f.scaledCount" -}}
{{- $value := index . 0 }}
{{- $total := index . 1 | int }}
{{- if kindIs "string" $value }}
{{- $percent := trimSuffix "%" $value | int }}
{{- div (add (mul $total $percent) 99) 100 }}
{{- else }}
{{- $value | int }}
{{- end }}
{{- end }}

{{/*
HPA bounds that contradict each other, and a PodDisruptionBudget that lets no pod go (every node
drain would hang on it), fail the render instead of reaching the cluster.
*/}}
{{- define "f2f.validate.scaling" -}}
{{- $hpa := .Values.autoscaling }}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d): the HorizontalPodAutoscaler would be rejected; lower minReplicas or raise maxReplicas" (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- $pods := include "f2f.minServerPods" . | int }}
{{- $allowed := 0 }}
{{- $rule := "" }}
{{- if not (kindIs "invalid" $pdb.maxUnavailable) }}
{{- $allowed = include "f2f.scaledCount" (list $pdb.maxUnavailable $pods) | int }}
{{- $rule = printf "maxUnavailable %v" $pdb.maxUnavailable }}
{{- else }}
{{- $allowed = sub $pods (include "f2f.scaledCount" (list $pdb.minAvailable $pods) | int) | int }}
{{- $rule = printf "minAvailable %v" $pdb.minAvailable }}
{{- end }}
{{- if le $allowed 0 }}
{{- fail (printf "podDisruptionBudget (%s) with %d server pod(s) (%s) lets no pod be evicted, so every node drain would hang: run more pods, set podDisruptionBudget.maxUnavailable: 1, or podDisruptionBudget.enabled: false" $rule $pods (ternary "autoscaling.minReplicas" "server.replicaCount" $hpa.enabled)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The kubelet kills the server at terminationGracePeriodSeconds: it must cover the preStop sleep and uvicorn's drain. */}}
{{- define "f2f.validate.shutdown" -}}
{{- $s := .Values.server }}
{{- $needed := add $s.preStopSleepSeconds $s.gracefulShutdownSeconds | int }}
{{- if le (int $s.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "server.terminationGracePeriodSeconds (%d) must exceed server.preStopSleepSeconds (%d) + server.gracefulShutdownSeconds (%d) = %d, or pods are killed in the middle of their drain" (int $s.terminationGracePeriodSeconds) (int $s.preStopSleepSeconds) (int $s.gracefulShutdownSeconds) $needed) }}
{{- end }}
{{- end }}

{{/* With restricted egress, some rule must let the pods reach PostgreSQL (no rule, no database). */}}
{{- define "f2f.validate.egress" -}}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled $np.restrictEgress }}
{{- $port := int $np.databasePort }}
{{- $found := false }}
{{- range $np.egress }}
{{- if not .ports }}
{{- $found = true }}
{{- end }}
{{- range .ports }}
{{- $from := int (.port | default 0) }}
{{- $to := int (.endPort | default $from) }}
{{- $named := and (kindIs "string" .port) (not (regexMatch "^[0-9]+$" (toString .port))) }}
{{- if or (not .port) $named (and (le $from $port) (ge $to $port)) }}
{{- $found = true }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "networkPolicy.restrictEgress allows no traffic to PostgreSQL: add a rule for port %d to networkPolicy.egress, for example\n  egress:\n    - to:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: <namespace of PostgreSQL>\n      ports:\n        - port: %d\n          protocol: TCP\n(set networkPolicy.databasePort when PostgreSQL listens on another port)" $port $port) }}
{{- end }}
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
{{- include "f2f.tracingEnv" $ctx | nindent 0 }}
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

{{/* PromQL matchers of this release's series plus one extra matcher. Args: list $ extra. */}}
{{- define "f2f.prom.match" -}}
{{- $ctx := index . 0 }}
{{- $extra := index . 1 }}
{{- $base := $ctx.Values.metrics.prometheusRule.selector }}
{{- if not $base }}
{{- $base = printf "namespace=%q,job=%q" $ctx.Release.Namespace (include "f2f.fullname" $ctx) }}
{{- end }}
{{- printf "{%s}" (join "," (compact (list $base $extra))) }}
{{- end }}
