{{/* Names */}}
{{- define "tp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tp.fullname" -}}
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

{{/* "<fullname>-<component>"; call with (dict "root" $ "component" "broker") */}}
{{- define "tp.componentName" -}}
{{- printf "%s-%s" (include "tp.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "tp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels; call with (dict "root" $ "component" "broker") */}}
{{- define "tp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tp.labels" -}}
helm.sh/chart: {{ include "tp.chart" .root }}
{{ include "tp.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: telemetry-pipeline
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "tp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Services */}}
{{/*
The label of the Services a ServiceMonitor scrapes: one per component, whose endpoints are the
pods serving /metrics (not the broker's headless Service, which would scrape it twice).
*/}}
{{- define "tp.scrapeLabel" -}}
telemetry-pipeline/metrics: "true"
{{- end }}

{{/*
The clients' BROKER_URL: the broker Service; with broker.cluster.enabled, every broker pod's
URL, comma-separated (the client library takes a list and follows redirects to a
partition's leader).
*/}}
{{- define "tp.brokerUrl" -}}
{{- if .Values.broker.cluster.enabled }}
{{- include "tp.brokerPodUrls" . | fromJsonArray | join "," }}
{{- else }}
{{- include "tp.brokerServiceUrl" . }}
{{- end }}
{{- end }}

{{- define "tp.brokerServiceUrl" -}}
{{- printf "%s://%s:%v" (include "tp.scheme" .) (include "tp.componentName" (dict "root" . "component" "broker")) .Values.broker.port }}
{{- end }}

{{/* ---- The broker cluster (broker.cluster; deploy/README.md, "Broker cluster") ---- */}}

{{/*
The broker StatefulSet's replica count, checked: 1 for a single broker; with
broker.cluster.enabled an odd number >= 3 (default 3), so that a majority survives a loss.
*/}}
{{- define "tp.brokerReplicas" -}}
{{- $b := .Values.broker }}
{{- if $b.cluster.enabled }}
{{- $n := int (default 3 $b.replicas) }}
{{- if or (lt $n 3) (eq (mod $n 2) 0) }}
{{- fail (printf "broker.replicas=%d with broker.cluster.enabled: a broker cluster needs an odd number of replicas >= 3 (3, 5, 7), so that a majority (a Raft quorum) survives the loss of a broker" $n) }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- fail "tls.enabled with broker.cluster.enabled: the brokers' cluster RPCs speak plain HTTP only, and a clustered broker refuses TLS (--tls-cert with --peers); turn one of them off" }}
{{- end }}
{{- $n }}
{{- else }}
{{- if ne (int (default 1 $b.replicas)) 1 }}
{{- fail "broker.replicas must be 1 without broker.cluster.enabled: a single broker owns every partition (for several brokers see deploy/README.md, \"Broker cluster\")" }}
{{- end }}
{{- 1 }}
{{- end }}
{{- end }}

{{/*
Every broker pod's URL, as a JSON list indexed by node id (the pod's StatefulSet ordinal):
the pods' stable names under the headless Service. Plain http: the cluster refuses TLS.
*/}}
{{- define "tp.brokerPodUrls" -}}
{{- $name := include "tp.componentName" (dict "root" . "component" "broker") }}
{{- $urls := list }}
{{- range $i := until (int (include "tp.brokerReplicas" .)) }}
{{- $urls = append $urls (printf "http://%s-%d.%s-headless.%s.svc:%v" $name $i $name $.Release.Namespace $.Values.broker.port) }}
{{- end }}
{{- toJson $urls }}
{{- end }}

{{/* BROKER_PEERS: "0=http://…,1=http://…", every broker, this one included. */}}
{{- define "tp.brokerPeers" -}}
{{- $peers := list }}
{{- range $id, $url := include "tp.brokerPodUrls" . | fromJsonArray }}
{{- $peers = append $peers (printf "%d=%s" $id $url) }}
{{- end }}
{{- join "," $peers }}
{{- end }}

{{/*
broker.affinity plus the cluster's anti-affinity: no two brokers on one node (required,
"hard", by default; preferred with broker.cluster.antiAffinity=soft), so one node's loss
takes at most one vote.
*/}}
{{- define "tp.brokerAffinity" -}}
{{- $b := .Values.broker }}
{{- $affinity := deepCopy ($b.affinity | default dict) }}
{{- if $b.cluster.enabled }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (fromYaml (include "tp.selectorLabels" (dict "root" . "component" "broker")))) }}
{{- $anti := get $affinity "podAntiAffinity" | default dict }}
{{- if eq $b.cluster.antiAffinity "soft" }}
{{- $terms := get $anti "preferredDuringSchedulingIgnoredDuringExecution" | default list }}
{{- $_ := set $anti "preferredDuringSchedulingIgnoredDuringExecution" (append $terms (dict "weight" 100 "podAffinityTerm" $term)) }}
{{- else }}
{{- $terms := get $anti "requiredDuringSchedulingIgnoredDuringExecution" | default list }}
{{- $_ := set $anti "requiredDuringSchedulingIgnoredDuringExecution" (append $terms $term) }}
{{- end }}
{{- $_ := set $affinity "podAntiAffinity" $anti }}
{{- end }}
{{- toJson $affinity }}
{{- end }}
{{/* ---- end of the broker cluster ---- */}}

{{/* Secrets: name and key of the broker token and of the database password */}}
{{- define "tp.brokerTokenSecretName" -}}
{{- if .Values.brokerAuth.existingSecret }}{{ .Values.brokerAuth.existingSecret }}{{ else }}{{ include "tp.componentName" (dict "root" . "component" "broker-token") }}{{ end }}
{{- end }}

{{- define "tp.brokerTokenSecretKey" -}}
{{- if .Values.brokerAuth.existingSecret }}{{ .Values.brokerAuth.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{- define "tp.dbSecretName" -}}
{{- if and .Values.postgresql.enabled .Values.postgresql.auth.existingSecret }}{{ .Values.postgresql.auth.existingSecret }}
{{- else if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret }}{{ .Values.externalDatabase.existingSecret }}
{{- else }}{{ include "tp.componentName" (dict "root" . "component" "db") }}{{ end }}
{{- end }}

{{- define "tp.dbSecretKey" -}}
{{- if and .Values.postgresql.enabled .Values.postgresql.auth.existingSecret }}{{ .Values.postgresql.auth.existingSecretKey }}
{{- else if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret }}{{ .Values.externalDatabase.existingSecretKey }}
{{- else }}password{{ end }}
{{- end }}

{{/*
A secret value that is generated once and then kept: the value from values if set, else the
one already in the cluster (upgrades), else a new random one. `helm template` has no cluster,
so it renders a random value.
Call with (dict "root" $ "secret" NAME "key" KEY "value" VALUE).
*/}}
{{- define "tp.persistentSecretValue" -}}
{{- if .value }}
{{- .value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret }}
{{- if and $existing (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 32 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The database settings of the collector and the API (DATABASE_URL or DB_*). */}}
{{- define "tp.databaseEnv" -}}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.urlSecret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalDatabase.urlSecret }}
      key: {{ .Values.externalDatabase.urlSecretKey }}
{{- else }}
{{- if .Values.postgresql.enabled }}
- name: DB_HOST
  value: {{ include "tp.componentName" (dict "root" . "component" "postgresql") | quote }}
- name: DB_PORT
  value: "5432"
- name: DB_USER
  value: {{ .Values.postgresql.auth.username | quote }}
- name: DB_NAME
  value: {{ .Values.postgresql.auth.database | quote }}
{{- else }}
{{- if not .Values.externalDatabase.host }}
{{- fail "postgresql.enabled=false needs externalDatabase.host (or externalDatabase.urlSecret)" }}
{{- end }}
- name: DB_HOST
  value: {{ .Values.externalDatabase.host | quote }}
- name: DB_PORT
  value: {{ .Values.externalDatabase.port | quote }}
- name: DB_USER
  value: {{ .Values.externalDatabase.user | quote }}
- name: DB_NAME
  value: {{ .Values.externalDatabase.database | quote }}
{{- end }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tp.dbSecretName" . }}
      key: {{ include "tp.dbSecretKey" . }}
{{- end }}
{{- end }}

{{/* BROKER_URL and BROKER_TOKEN for the broker's clients. */}}
{{- define "tp.brokerClientEnv" -}}
- name: BROKER_URL
  value: {{ include "tp.brokerUrl" . | quote }}
- name: TOPIC
  value: {{ .Values.topic | quote }}
{{- include "tp.brokerTokenEnv" . }}
{{- include "tp.brokerCaEnv" . }}
{{- end }}

{{- define "tp.brokerTokenEnv" -}}
{{- if .Values.brokerAuth.enabled }}
- name: BROKER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "tp.brokerTokenSecretName" . }}
      key: {{ include "tp.brokerTokenSecretKey" . }}
{{- end }}
{{- end }}

{{- define "tp.commonEnv" -}}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- with .Values.logLevel }}
- name: RUST_LOG
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Pod annotations; call with (dict "root" $ "values" .Values.X "port" PORT) */}}
{{- define "tp.podAnnotations" -}}
{{- if .root.Values.prometheusScrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- if .https }}
prometheus.io/scheme: https
{{- end }}
{{- end }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Scheduling: nodeSelector, tolerations, affinity, topology spread (plus the optional soft
spread over nodes). Call with (dict "root" $ "values" .Values.X "component" NAME).
*/}}
{{- define "tp.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or .values.topologySpreadConstraints .root.Values.spreadAcrossNodes }}
topologySpreadConstraints:
  {{- with .values.topologySpreadConstraints }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- if .root.Values.spreadAcrossNodes }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "tp.selectorLabels" . | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The volumes every pipeline container needs with a read-only root filesystem. */}}
{{- define "tp.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "tp.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* ---- TLS and tokens (values tls and apiAuth; deploy/README.md, "TLS and tokens") ---- */}}

{{/* The scheme of the broker's and the api's listeners. */}}
{{- define "tp.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{- define "tp.tlsSecretName" -}}
{{- if not .Values.tls.secretName }}
{{- fail "tls.enabled needs tls.secretName: a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt" }}
{{- end }}
{{- .Values.tls.secretName }}
{{- end }}

{{/* BROKER_CA_FILE: the broker's clients trust only the Secret's ca.crt. */}}
{{- define "tp.brokerCaEnv" -}}
{{- if .Values.tls.enabled }}
- name: BROKER_CA_FILE
  value: {{ printf "%s/ca.crt" .Values.tls.mountPath | quote }}
{{- end }}
{{- end }}

{{/* <PREFIX>_TLS_CERT and _KEY of a listener. Call with (dict "root" $ "prefix" "BROKER"). */}}
{{- define "tp.tlsServerEnv" -}}
{{- if .root.Values.tls.enabled }}
- name: {{ .prefix }}_TLS_CERT
  value: {{ printf "%s/tls.crt" .root.Values.tls.mountPath | quote }}
- name: {{ .prefix }}_TLS_KEY
  value: {{ printf "%s/tls.key" .root.Values.tls.mountPath | quote }}
{{- end }}
{{- end }}

{{/*
The TLS Secret as a volume: whole for a listener ("server": the broker, the api), only ca.crt
for a client ("ca": streamers, collectors), which never need the private key. Group-readable
(0440), as fsGroup makes the pod's user a member of the files' group.
Call with (dict "root" $ "only" "server"|"ca").
*/}}
{{- define "tp.tlsVolume" -}}
{{- if .root.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "tp.tlsSecretName" .root }}
    defaultMode: 288
    {{- if eq .only "ca" }}
    items:
      - key: ca.crt
        path: ca.crt
    {{- end }}
{{- end }}
{{- end }}

{{- define "tp.tlsVolumeMount" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ .Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/* A listener's probe: scheme HTTPS when TLS is on. Call with (dict "root" $ "probe" P). */}}
{{- define "tp.serverProbe" -}}
{{- $probe := deepCopy .probe }}
{{- if and .root.Values.tls.enabled $probe.httpGet }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}

{{/*
How a ServiceMonitor/PodMonitor endpoint on a listener's port scrapes it when TLS is on:
https, verified with the Secret's ca.crt for the Service name the certificate carries.
Call with (dict "root" $ "component" "broker"|"api").
*/}}
{{- define "tp.monitorTls" -}}
{{- if .root.Values.tls.enabled }}
scheme: https
tlsConfig:
  ca:
    secret:
      name: {{ include "tp.tlsSecretName" .root }}
      key: ca.crt
  serverName: {{ include "tp.componentName" . }}
{{- end }}
{{- end }}

{{/*
A token Secret as a file for a listener (BROKER_TOKEN_FILE, API_TOKEN_FILE): the server's
token is not in its environment. Call with (dict "name" VOLUME "secret" NAME "key" KEY); the
file is /etc/telemetry/<VOLUME>/token.
*/}}
{{- define "tp.tokenVolume" -}}
- name: {{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 288
    items:
      - key: {{ .key }}
        path: token
{{- end }}

{{- define "tp.tokenVolumeMount" -}}
- name: {{ . }}
  mountPath: /etc/telemetry/{{ . }}
  readOnly: true
{{- end }}

{{- define "tp.apiTokenSecretName" -}}
{{- if .Values.apiAuth.existingSecret }}{{ .Values.apiAuth.existingSecret }}{{ else }}{{ include "tp.componentName" (dict "root" . "component" "api-token") }}{{ end }}
{{- end }}

{{- define "tp.apiTokenSecretKey" -}}
{{- if .Values.apiAuth.existingSecret }}{{ .Values.apiAuth.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}
{{/* ---- end of TLS and tokens ---- */}}
