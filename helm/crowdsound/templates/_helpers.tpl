{{/*
Helpers of the crowdsound chart. Every name is namespaced "crowdsound.".
*/}}

{{/* The chart name. */}}
{{- define "crowdsound.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "crowdsound.fullname" -}}
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

{{/* name-version of the chart, for the helm.sh/chart label. */}}
{{- define "crowdsound.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "crowdsound.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crowdsound.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels of every resource. */}}
{{- define "crowdsound.labels" -}}
helm.sh/chart: {{ include "crowdsound.chart" . }}
{{ include "crowdsound.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crowdsound
{{- end }}

{{/* Selector labels of one component; dict "root" $ "component" "worker". */}}
{{- define "crowdsound.componentSelectorLabels" -}}
{{ include "crowdsound.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels of one component's resources; dict "root" $ "component" "worker". */}}
{{- define "crowdsound.componentLabels" -}}
{{ include "crowdsound.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The ServiceAccount name. */}}
{{- define "crowdsound.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crowdsound.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository:tag, or repository@digest. */}}
{{- define "crowdsound.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The consumer group of a component: worker -> <prefix>crowdsound-streams (the Faust app id);
composer -> <prefix>crowdsound-composer-<outputs> (consumers/composer.py, e.g.
crowdsound-composer-audio-control).
*/}}
{{- define "crowdsound.consumerGroup" -}}
{{- $values := index .root.Values .component }}
{{- if $values.consumerGroup }}
{{- $values.consumerGroup }}
{{- else if eq .component "worker" }}
{{- printf "%scrowdsound-streams" .root.Values.config.topicPrefix }}
{{- else if eq .component "composer" }}
{{- printf "%scrowdsound-composer-%s" .root.Values.config.topicPrefix (include "crowdsound.composerOutputs" .root | replace "," "-") }}
{{- else }}
{{- printf "%scrowdsound-%s" .root.Values.config.topicPrefix .component }}
{{- end }}
{{- end }}

{{/* The composer's outputs, sorted and comma separated as its --outputs: "audio,control". */}}
{{- define "crowdsound.composerOutputs" -}}
{{- .Values.composer.outputs | uniq | sortAlpha | join "," }}
{{- end }}

{{/* The composer's internal state topic (consumers/composer.py state_topic), with the prefix. */}}
{{- define "crowdsound.composerStateTopic" -}}
{{- printf "%scrowdsound-composer-state" .Values.config.topicPrefix }}
{{- end }}

{{/* True ("true") when the protocol uses SASL. */}}
{{- define "crowdsound.sasl" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{/* True ("true") when the protocol uses TLS. */}}
{{- define "crowdsound.tls" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/* Name of the Secret with the SASL password (chart-made or existing). */}}
{{- define "crowdsound.passwordSecretName" -}}
{{- default (include "crowdsound.fullname" .) .Values.kafka.sasl.existingSecret }}
{{- end }}

{{/* True ("true") when every pod logs in as its role's Strimzi KafkaUser. */}}
{{- define "crowdsound.strimziUsers" -}}
{{- if .Values.kafka.strimziUsers.enabled }}true{{ end }}
{{- end }}

{{/* A role's KafkaUser name (= its user name and the name of the Secret Strimzi makes for it):
<fullname>-<role>. dict "root" $ "role" "worker" */}}
{{- define "crowdsound.roleUser" -}}
{{- printf "%s-%s" (include "crowdsound.fullname" .root) .role | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The environment variable of a client property: ssl.key.password -> KAFKA_CLIENT_SSL_KEY_PASSWORD. */}}
{{- define "crowdsound.clientPropertyEnv" -}}
{{- printf "KAFKA_CLIENT_%s" (. | upper | replace "." "_" | replace "-" "_") }}
{{- end }}

{{/* True ("true") when a client property's name looks secret: the rule of
infra/kafka_security.py is_secret_name (password, secret, token, key, jaas, credential). */}}
{{- define "crowdsound.secretProperty" -}}
{{- if regexMatch "(?i)password|secret|token|key|jaas|credential" . }}true{{ end }}
{{- end }}

{{/* The secret-looking client properties as Secret data (env name: base64 value). */}}
{{- define "crowdsound.clientSecretData" -}}
{{- range $property, $value := .Values.kafka.clientProperties }}
{{- if include "crowdsound.secretProperty" $property }}
{{ include "crowdsound.clientPropertyEnv" $property }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Key of the SASL password in that Secret. */}}
{{- define "crowdsound.passwordSecretKey" -}}
{{- if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.existingSecretPasswordKey }}{{ else }}password{{ end }}
{{- end }}

{{/* True ("true") when a CA is mounted (chart-made or existing Secret). */}}
{{- define "crowdsound.hasCa" -}}
{{- if and (include "crowdsound.tls" .) (or .Values.kafka.tls.caCert .Values.kafka.tls.existingSecret) }}true{{ end }}
{{- end }}

{{/* Name of the Secret with the CA. */}}
{{- define "crowdsound.caSecretName" -}}
{{- default (printf "%s-kafka-ca" (include "crowdsound.fullname" .)) .Values.kafka.tls.existingSecret }}
{{- end }}

{{/* Key of the CA in that Secret. */}}
{{- define "crowdsound.caSecretKey" -}}
{{- if .Values.kafka.tls.existingSecret }}{{ .Values.kafka.tls.existingSecretCaKey }}{{ else }}ca.crt{{ end }}
{{- end }}

{{/* Where the CA is mounted. */}}
{{- define "crowdsound.caPath" -}}
/etc/crowdsound/kafka-ca/ca.crt
{{- end }}

{{/*
The non-secret settings (ConfigMap data): the KAFKA_* and CROWDSOUND_* environment.
*/}}
{{- define "crowdsound.configData" -}}
KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- if include "crowdsound.sasl" . }}
KAFKA_SASL_MECHANISM: {{ .Values.kafka.sasl.mechanism | quote }}
{{- if not (include "crowdsound.strimziUsers" .) }}
KAFKA_SASL_USERNAME: {{ .Values.kafka.sasl.username | quote }}
{{- end }}
{{- end }}
{{- if include "crowdsound.hasCa" . }}
KAFKA_SSL_CA_LOCATION: {{ include "crowdsound.caPath" . | quote }}
{{- end }}
{{- range $property, $value := .Values.kafka.clientProperties }}
{{- if not (include "crowdsound.secretProperty" $property) }}
{{ include "crowdsound.clientPropertyEnv" $property }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
CROWDSOUND_TOPIC_PREFIX: {{ .Values.config.topicPrefix | quote }}
CROWDSOUND_PARTITIONS: {{ .Values.config.partitions | toString | quote }}
CROWDSOUND_REPLICATION_FACTOR: {{ .Values.config.replicationFactor | toString | quote }}
CROWDSOUND_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
CROWDSOUND_GRACE_MS: {{ .Values.config.graceMs | toString | quote }}
CROWDSOUND_WINDOW_HOP_MS: {{ .Values.config.windowHopMs | toString | quote }}
CROWDSOUND_WINDOW_LENGTH_MS: {{ .Values.config.windowLengthMs | toString | quote }}
CROWDSOUND_STREAMS_STORE: {{ .Values.config.streamsStore | quote }}
CROWDSOUND_MIN_INSYNC_REPLICAS: {{ .Values.config.minInsyncReplicas | toString | quote }}
CROWDSOUND_FRAME_HELPER: {{ ternary "1" "0" .Values.config.frameHelper | quote }}
CROWDSOUND_STATE_DIR: {{ .Values.volumes.statePath | quote }}
CROWDSOUND_METRICS_HOST: {{ .Values.config.metricsHost | quote }}
CROWDSOUND_HEALTH_STALL_S: {{ .Values.config.healthStallSeconds | toString | quote }}
{{- end }}

{{/*
Environment of a crowdsound container: the ConfigMap, the credentials (the release's, or with
strimziUsers those of the container's role), the secret client properties from the Secret
clientSecret, and extra variables.
dict "root" $ "configMap" NAME "passwordSecret" NAME "clientSecret" NAME "role" ROLE "extra" LIST
*/}}
{{- define "crowdsound.env" -}}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
{{- $root := .root }}
{{- $clientSecret := .clientSecret }}
{{- $secretProperties := include "crowdsound.clientSecretData" $root | fromYaml }}
{{- if or (include "crowdsound.sasl" $root) .extra $secretProperties }}
env:
  {{- if and (include "crowdsound.sasl" $root) (include "crowdsound.strimziUsers" $root) }}
  {{- $user := include "crowdsound.roleUser" (dict "root" $root "role" .role) }}
  - name: KAFKA_SASL_USERNAME
    value: {{ $user }}
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ $user }}
        key: password
  {{- else if include "crowdsound.sasl" $root }}
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .passwordSecret }}
        key: {{ include "crowdsound.passwordSecretKey" $root }}
  {{- end }}
  {{- range $name, $_ := $secretProperties }}
  - name: {{ $name }}
    valueFrom:
      secretKeyRef:
        name: {{ $clientSecret }}
        key: {{ $name }}
  {{- end }}
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Volume mounts of a crowdsound container. dict "root" $ */}}
{{- define "crowdsound.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: state
    mountPath: {{ .root.Values.volumes.statePath }}
  {{- if include "crowdsound.hasCa" .root }}
  - name: kafka-ca
    mountPath: {{ dir (include "crowdsound.caPath" .root) }}
    readOnly: true
  {{- end }}
{{- end }}

{{/* Volumes of a crowdsound pod. dict "root" $ "caSecret" NAME */}}
{{- define "crowdsound.volumes" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .root.Values.volumes.tmpSizeLimit }}
  - name: state
    emptyDir:
      sizeLimit: {{ .root.Values.volumes.stateSizeLimit }}
  {{- if include "crowdsound.hasCa" .root }}
  - name: kafka-ca
    secret:
      secretName: {{ .caSecret }}
      items:
        - key: {{ include "crowdsound.caSecretKey" .root }}
          path: {{ base (include "crowdsound.caPath" .root) }}
  {{- end }}
{{- end }}

{{/* Pod-level settings shared by every pod of the chart. */}}
{{- define "crowdsound.podCommon" -}}
serviceAccountName: {{ include "crowdsound.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* One HTTP probe on /healthz. dict "probe" VALUES */}}
{{- define "crowdsound.probe" -}}
httpGet:
  path: /healthz
  port: metrics
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* Checksums of the configuration, so pods roll when it changes. */}}
{{- define "crowdsound.configChecksums" -}}
checksum/config: {{ include "crowdsound.configData" . | sha256sum }}
checksum/secret: {{ printf "%s|%s|%s" .Values.kafka.sasl.password .Values.kafka.tls.caCert (include "crowdsound.clientSecretData" .) | sha256sum }}
{{- end }}

{{/*
Checks of values that the schema cannot express. Included by the ConfigMap, which is
always rendered.
*/}}
{{- define "crowdsound.validate" -}}
{{- if and (include "crowdsound.sasl" .) (not .Values.kafka.sasl.mechanism) }}
{{- fail "kafka.sasl.mechanism is required when kafka.securityProtocol is SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- if and (eq .Values.kafka.securityProtocol "SASL_PLAINTEXT") (eq .Values.kafka.sasl.mechanism "PLAIN") }}
{{- fail "kafka.sasl.mechanism PLAIN over SASL_PLAINTEXT sends the password in clear text: use kafka.securityProtocol SASL_SSL" }}
{{- end }}
{{- if include "crowdsound.strimziUsers" . }}
{{- if or (not (include "crowdsound.sasl" .)) (ne .Values.kafka.sasl.mechanism "SCRAM-SHA-512") }}
{{- fail "kafka.strimziUsers needs kafka.securityProtocol SASL_SSL (or SASL_PLAINTEXT) with kafka.sasl.mechanism SCRAM-SHA-512: the KafkaUsers are SCRAM-SHA-512 users" }}
{{- end }}
{{- if eq .Values.topics.mode "job" }}
{{- fail "kafka.strimziUsers needs topics.mode strimzi or none: the pre-install topics Job would run before any KafkaUser exists" }}
{{- end }}
{{- else }}
{{- if and (include "crowdsound.sasl" .) (not .Values.kafka.sasl.username) }}
{{- fail "kafka.sasl.username is required when kafka.securityProtocol is SASL_PLAINTEXT or SASL_SSL" }}
{{- end }}
{{- if and (include "crowdsound.sasl" .) (not .Values.kafka.sasl.password) (not .Values.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.password or kafka.sasl.existingSecret is required when kafka.securityProtocol is SASL_*" }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.tls.caCert .Values.kafka.tls.existingSecret }}
{{- fail "set kafka.tls.caCert or kafka.tls.existingSecret, not both" }}
{{- end }}
{{- if and .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret }}
{{- fail "set kafka.sasl.password or kafka.sasl.existingSecret, not both" }}
{{- end }}
{{- if ne (mod (int .Values.config.windowLengthMs) (int .Values.config.windowHopMs)) 0 }}
{{- fail (printf "config.windowLengthMs (%v) must be a multiple of config.windowHopMs (%v)" .Values.config.windowLengthMs .Values.config.windowHopMs) }}
{{- end }}
{{- range $component := list "worker" "composer" }}
{{- $values := index $.Values $component }}
{{- if and $values.autoscaling.hpa.enabled $values.autoscaling.keda.enabled }}
{{- fail (printf "%s.autoscaling: enable hpa or keda, not both (KEDA makes its own HorizontalPodAutoscaler)" $component) }}
{{- end }}
{{- if and $values.autoscaling.hpa.enabled (kindIs "invalid" $values.autoscaling.hpa.targetCPUUtilizationPercentage) (kindIs "invalid" $values.autoscaling.hpa.targetMemoryUtilizationPercentage) }}
{{- fail (printf "%s.autoscaling.hpa: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" $component) }}
{{- end }}
{{- end }}
{{- end }}
