{{/* Release-wide names and labels. */}}
{{- define "orderflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orderflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "orderflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: orderflow
{{- end -}}

{{/* Selector labels for one component (a service name, "nats", "postgres"). ctx: {root, component} */}}
{{- define "orderflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "orderflow.componentLabels" -}}
{{ include "orderflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The services to render: each enabled entry of .Values.services deep-merged over
.Values.serviceDefaults, returned as YAML (a map name → values). Use with fromYaml.
*/}}
{{- define "orderflow.services" -}}
{{- $out := dict -}}
{{- range $name, $svc := .Values.services -}}
{{- $svc = default dict $svc -}}
{{- $merged := mergeOverwrite (deepCopy $.Values.serviceDefaults) (deepCopy $svc) -}}
{{- /* A null drops the key, as Helm drops a chart default's: mergeOverwrite keeps the default
under an entry's null, and a null with no default to drop would be rendered as one. */ -}}
{{- include "orderflow.unsetNulls" (dict "src" $svc "dst" $merged) -}}
{{- include "orderflow.unsetNulls" (dict "src" $merged "dst" $merged) -}}
{{- if $merged.enabled -}}
{{- if and $.Values.metrics.enabled (eq (toString $merged.containerPort) (toString $.Values.metrics.port)) -}}
{{- fail (printf "services.%s.containerPort and metrics.port are both %v: the pod's HTTP server and its metrics server cannot share a port" $name $.Values.metrics.port) -}}
{{- end -}}
{{- $_ := set $out $name $merged -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Unsets in .dst each key that .src sets to null, recursing into maps. ctx: {src, dst} */}}
{{- define "orderflow.unsetNulls" -}}
{{- range $k, $v := .src -}}
{{- if kindIs "invalid" $v -}}
{{- $_ := unset $.dst $k -}}
{{- else if and (kindIs "map" $v) (kindIs "map" (index $.dst $k)) -}}
{{- include "orderflow.unsetNulls" (dict "src" $v "dst" (index $.dst $k)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A service's ConfigMap data; its hash in the pod template rolls that service's pods (and only
theirs) when it changes. ctx: {root, name, svc}
*/}}
{{- define "orderflow.serviceConfig" -}}
{{- $env := mergeOverwrite (deepCopy .root.Values.config) (deepCopy .svc.env) -}}
{{- range $k, $v := $env }}
{{- /* YAML numbers arrive as float64, which toString writes as 2.592e+09 from a million up: whole ones are written in digits. */}}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) }}
{{ $k }}: {{ int64 $v | toString | quote }}
{{- else }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}
PORT: {{ .svc.containerPort | quote }}
{{- /* default: a release upgraded with --reuse-values has the older chart's values, without it. */}}
HOST: {{ .root.Values.listenAddress | default "0.0.0.0" | quote }}
NATS_URL: {{ include "orderflow.natsUrl" .root | quote }}
# Migrations run in the chart's Job, never concurrently from every replica.
MIGRATE_ON_START: "false"
SHUTDOWN_TIMEOUT_MS: {{ .root.Values.shutdown.timeoutMs | quote }}
{{- if .root.Values.metrics.enabled }}
METRICS_PORT: {{ .root.Values.metrics.port | quote }}
{{- end }}
{{- end -}}

{{/* Object name for a service's resources. ctx: {root, name} */}}
{{- define "orderflow.serviceFullname" -}}
{{- printf "%s-%s" (include "orderflow.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Image reference for a service. ctx: {root, name, svc} */}}
{{- define "orderflow.serviceImage" -}}
{{- $img := .root.Values.image -}}
{{- $repo := default (printf "%s/%s" $img.repositoryPrefix .name) .svc.image.repository -}}
{{- /* A repository that names its registry already (a first part with a dot or a port, or
localhost, as image references tell a host) is taken as it is: ghcr.io/acme/x given before
image.registry had a default stays ghcr.io/acme/x. */ -}}
{{- $first := regexSplit "/" $repo -1 | first -}}
{{- $hasHost := and (contains "/" $repo) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if and $img.registry (not $hasHost) -}}{{- $repo = printf "%s/%s" $img.registry $repo -}}{{- end -}}
{{- if .svc.image.digest -}}
{{- printf "%s@%s" $repo .svc.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.svc.image.tag | default $img.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.pullPolicy" -}}
{{- .svc.image.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- end -}}

{{- define "orderflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ include "orderflow.fullname" . }}{{- else -}}default{{- end -}}
{{- end -}}

{{/* Database name in the bundled Postgres for a service. ctx: {name, svc} */}}
{{- define "orderflow.databaseName" -}}
{{- .svc.database.name | default (.name | replace "-" "_") -}}
{{- end -}}

{{/* Where a service's DATABASE_URL lives: "secretName|key". ctx: {root, name, svc} */}}
{{- define "orderflow.databaseSecretRef" -}}
{{- if .svc.database.existingSecret -}}
{{- printf "%s|%s" .svc.database.existingSecret .svc.database.existingSecretKey -}}
{{- else -}}
{{- printf "%s-db|DATABASE_URL" (include "orderflow.serviceFullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The DATABASE_URL the chart writes into a service's Secret (when it names no existingSecret): its
database.url, or the bundled Postgres's URL without a password (the pods take that from the
Postgres Secret as PGPASSWORD, orderflow.bundledPasswordEnv). secret.yaml writes it, and the
Deployment hashes it to roll on a change. ctx: {root, name, svc}
*/}}
{{- define "orderflow.databaseUrl" -}}
{{- if include "orderflow.bundledDatabase" . -}}
{{- printf "postgres://%s@%s:5432/%s" (.root.Values.postgres.auth.username | urlquery) (include "orderflow.postgresHost" .root) (include "orderflow.databaseName" .) -}}
{{- else -}}
{{- .svc.database.url -}}
{{- end -}}
{{- end -}}

{{/* "true" when the migration Jobs are pre-install,pre-upgrade hooks: without the bundled Postgres (migration-job.yaml says why). */}}
{{- define "orderflow.migrationHook" -}}
{{- /* Absent (an upgrade with --reuse-values from an older chart) is true, as before the value existed. */ -}}
{{- if and (not .Values.postgres.deploy) (ne .Values.migrationHooks false) }}true{{ end -}}
{{- end -}}

{{/* The hook copy of a service's DATABASE_URL Secret its migration hook Job reads (secret.yaml). ctx: {root, name} */}}
{{- define "orderflow.migrationSecretName" -}}
{{- printf "%s-db-migration" (include "orderflow.serviceFullname" .) -}}
{{- end -}}

{{/* "true" when a service's database is in the bundled Postgres (no URL or Secret of its own). ctx: {root, svc} */}}
{{/*
The checksum of secret material for a pod template annotation (a rotated secret must roll the
pods that read it). Deployments and StatefulSets are readable by roles that may not read Secrets
(the built-in `view`), and a bare sha256 of a password is brute-forced offline at billions of
guesses a second. sprig's derivePassword (the Master Password algorithm: scrypt with N=32768,
r=8, p=2), salted with the release, costs every guess about half a second of CPU instead, and
is deterministic, so the pods roll when the secret changes and not on every upgrade. Empty
material skips it (it costs a render the same half second). ctx: {root, data}
*/}}
{{- define "orderflow.secretChecksum" -}}
{{- if .data -}}
{{- derivePassword 1 "maximum" .data "orderflow/checksum" (printf "%s/%s" .root.Release.Namespace .root.Release.Name) | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* The secret part of the NATS credentials, through orderflow.secretChecksum; empty without one. */}}
{{- define "orderflow.natsSecretChecksum" -}}
{{- $auth := .Values.nats.auth -}}
{{- if or $auth.password $auth.token -}}
{{- include "orderflow.secretChecksum" (dict "root" . "data" (list $auth.password $auth.token | toJson)) -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.bundledDatabase" -}}
{{- if and .root.Values.postgres.deploy (not .svc.database.existingSecret) (not .svc.database.url) }}true{{ end -}}
{{- end -}}

{{/*
The bundled Postgres's password for a service's container, as PGPASSWORD, which the driver uses
when DATABASE_URL has none: the URL Secret never holds the password, so it cannot disagree with
the Postgres Secret (postgres.auth.existingSecret, or a render without lookup). ctx: {root, svc}
*/}}
{{- define "orderflow.bundledPasswordEnv" -}}
{{- if include "orderflow.bundledDatabase" . }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: { name: {{ include "orderflow.postgresSecretName" .root | quote }}, key: password }
{{- end }}
{{- end -}}

{{/* Bundled Postgres: host, secret name, and the password (generated once, read back on upgrade). */}}
{{- define "orderflow.postgresHost" -}}{{ include "orderflow.fullname" . }}-postgres{{- end -}}
{{- define "orderflow.postgresSecretName" -}}
{{- .Values.postgres.auth.existingSecret | default (printf "%s-postgres" (include "orderflow.fullname" .)) -}}
{{- end -}}
{{- define "orderflow.postgresPassword" -}}
{{- if .Values.postgres.auth.password -}}
{{- .Values.postgres.auth.password -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "orderflow.postgresSecretName" .) -}}
{{- if and $existing $existing.data (index $existing.data "password") -}}
{{- index $existing.data "password" | b64dec -}}
{{- else -}}
{{- /* Remember the generated password so every template of this render uses the same one. */ -}}
{{- $_ := set .Values.postgres.auth "password" (randAlphaNum 24) -}}
{{- .Values.postgres.auth.password -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.natsUrl" -}}
{{- if .Values.nats.deploy -}}
{{- printf "nats://%s-nats:4222" (include "orderflow.fullname" .) -}}
{{- else -}}
{{- required "nats.url is required when nats.deploy=false (e.g. nats://nats.nats.svc:4222)" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{- define "orderflow.natsSecretName" -}}
{{- .Values.nats.auth.existingSecret | default (printf "%s-nats-auth" (include "orderflow.fullname" .)) -}}
{{- end -}}

{{/*
The bundled NATS server's authorization block for the credentials in nats.auth, a file nats.conf
includes. Each value is a double-quoted string with `\` and `"` escaped, which nats-server reads
back exactly: a $VARIABLE reference would be parsed as config (123456 a number, x}y an error).
*/}}
{{- define "orderflow.natsQuoted" -}}
"{{ . | replace "\\" "\\\\" | replace "\"" "\\\"" }}"
{{- end -}}
{{- define "orderflow.natsAuthConf" -}}
{{- with .Values.nats.auth -}}
{{- if .token -}}
authorization { token: {{ include "orderflow.natsQuoted" .token }} }
{{- else -}}
authorization { user: {{ include "orderflow.natsQuoted" .user }}, password: {{ include "orderflow.natsQuoted" .password }} }
{{- end }}
{{ end -}}
{{- end -}}


{{- define "orderflow.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown -}}
{{- add $s.preStopSleepSeconds (div (add $s.timeoutMs 999) 1000) $s.marginSeconds -}}
{{- end -}}

{{/* NetworkPolicy helpers: TCP ports of a peer list, and DNS egress (UDP+TCP). */}}
{{- define "orderflow.netpol.ports" -}}
{{- range .ports }}
- { port: {{ . }}, protocol: TCP }
{{- end }}
{{- end }}
{{- define "orderflow.netpol.dns" -}}
- to:
    {{- toYaml .to | nindent 4 }}
  ports:
    {{- range .ports }}
    - { port: {{ . }}, protocol: UDP }
    - { port: {{ . }}, protocol: TCP }
    {{- end }}
{{- end }}

{{/* The /tmp emptyDir: capped at tmpVolume.sizeLimit, or unlimited when that is null. */}}
{{- define "orderflow.tmpEmptyDir" -}}
{{- with .Values.tmpVolume.sizeLimit }}{ sizeLimit: {{ . }} }{{ else }}{}{{ end -}}
{{- end -}}

{{/*
The NATS_TLS_* variables nats.tls sets (variable: key in its Secret), as YAML; none without an
existingSecret. A key missing from the values (an upgrade with --reuse-values keeps an older
chart's defaults, which have none) takes cert-manager's name; "" leaves that file out.
*/}}
{{- define "orderflow.natsTlsFiles" -}}
{{- $tls := .Values.nats.tls | default dict -}}
{{- if $tls.existingSecret -}}
{{- range $var, $pair := dict "NATS_TLS_CA_FILE" (list "caKey" "ca.crt") "NATS_TLS_CERT_FILE" (list "certKey" "tls.crt") "NATS_TLS_KEY_FILE" (list "keyKey" "tls.key") }}
{{- $key := ternary (get $tls (index $pair 0)) (index $pair 1) (hasKey $tls (index $pair 0)) }}
{{- if $key }}
{{ $var }}: {{ $key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
