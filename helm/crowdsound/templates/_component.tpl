{{/*
Everything a long-running crowdsound component needs: Deployment, metrics Service,
PodDisruptionBudget, and optionally HorizontalPodAutoscaler, KEDA ScaledObject and
ServiceMonitor. Used by worker.yaml and composer.yaml:

  include "crowdsound.component" (dict "root" $ "component" "worker" "command" (list "worker"))

Values come from .Values.<component> (same shape for every component, see values.schema.json).
*/}}
{{- define "crowdsound.component" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $values := index $root.Values $component }}
{{- $fullname := include "crowdsound.fullname" $root }}
{{- $name := printf "%s-%s" $fullname $component | trunc 63 | trimSuffix "-" }}
{{- $ctx := dict "root" $root "component" $component }}
{{- $args := concat .command $values.extraArgs }}
{{- if $values.staticMembership }}
{{- $args = append $args "--instance-id=$(POD_NAME)" }}
{{- end }}
{{- $env := list (dict "name" "CROWDSOUND_METRICS_PORT" "value" (toString $values.metricsPort)) }}
{{- /* The pod name from the downward API, for every argument that names $(POD_NAME). */}}
{{- if contains "$(POD_NAME)" (join " " $args) }}
{{- $env = append $env (dict "name" "POD_NAME" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.name"))) }}
{{- end }}
{{- $env = concat $env $values.extraEnv }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not (or $values.autoscaling.hpa.enabled $values.autoscaling.keda.enabled) }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "crowdsound.componentSelectorLabels" $ctx | nindent 6 }}
  strategy:
    # One pod at a time: every leaving or joining member rebalances the consumer group.
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "crowdsound.componentSelectorLabels" $ctx | nindent 8 }}
        app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
        app.kubernetes.io/part-of: crowdsound
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "crowdsound.configChecksums" $root | nindent 8 }}
        {{- if $root.Values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $values.metricsPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "crowdsound.podCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        - {{ toYaml (merge (dict) . (dict "labelSelector" (dict "matchLabels" (include "crowdsound.componentSelectorLabels" $ctx | fromYaml)))) | indent 10 | trim }}
        {{- end }}
      {{- end }}
      containers:
        - name: {{ $component }}
          image: {{ include "crowdsound.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml $args | nindent 12 }}
          workingDir: {{ $root.Values.volumes.statePath }}
          ports:
            - name: metrics
              containerPort: {{ $values.metricsPort }}
              protocol: TCP
          {{- include "crowdsound.env" (dict "root" $root "configMap" $fullname "passwordSecret" (include "crowdsound.passwordSecretName" $root) "clientSecret" $fullname "role" $component "extra" $env) | nindent 10 }}
          {{- if $values.startupProbe.enabled }}
          startupProbe:
            {{- include "crowdsound.probe" (dict "probe" $values.startupProbe) | nindent 12 }}
          {{- end }}
          {{- if $values.livenessProbe.enabled }}
          livenessProbe:
            {{- include "crowdsound.probe" (dict "probe" $values.livenessProbe) | nindent 12 }}
          {{- end }}
          {{- if $values.readinessProbe.enabled }}
          readinessProbe:
            {{- include "crowdsound.probe" (dict "probe" $values.readinessProbe) | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          {{- include "crowdsound.volumeMounts" $ctx | nindent 10 }}
      {{- include "crowdsound.volumes" (dict "root" $root "caSecret" (include "crowdsound.caSecretName" $root)) | nindent 6 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-metrics
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
  {{- with $root.Values.metrics.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "crowdsound.componentSelectorLabels" $ctx | nindent 4 }}
  ports:
    - name: metrics
      port: {{ $values.metricsPort }}
      targetPort: metrics
      protocol: TCP
{{- if $values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $values.podDisruptionBudget.minAvailable) }}
  minAvailable: {{ $values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $values.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "crowdsound.componentSelectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- with $values.autoscaling.hpa }}
{{- if .enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ .minReplicas }}
  maxReplicas: {{ .maxReplicas }}
  metrics:
    {{- if not (kindIs "invalid" .targetCPUUtilizationPercentage) }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .targetCPUUtilizationPercentage }}
    {{- end }}
    {{- if not (kindIs "invalid" .targetMemoryUtilizationPercentage) }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ .targetMemoryUtilizationPercentage }}
    {{- end }}
  behavior:
    # Scaling a consumer group rebalances it: scale down slowly.
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end }}
{{- end }}
{{- with $values.autoscaling.keda }}
{{- if .enabled }}
{{- $auth := or (include "crowdsound.sasl" $root) (include "crowdsound.hasCa" $root) }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ $name }}
  minReplicaCount: {{ .minReplicaCount }}
  maxReplicaCount: {{ .maxReplicaCount }}
  pollingInterval: {{ .pollingInterval }}
  cooldownPeriod: {{ .cooldownPeriod }}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 300
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrapServers | quote }}
        consumerGroup: {{ include "crowdsound.consumerGroup" $ctx | quote }}
        {{- with .topic }}
        topic: {{ printf "%s%s" $root.Values.config.topicPrefix . | quote }}
        {{- end }}
        lagThreshold: {{ .lagThreshold | quote }}
        activationLagThreshold: {{ .activationLagThreshold | quote }}
        offsetResetPolicy: earliest
        allowIdleConsumers: "false"
        {{- if include "crowdsound.sasl" $root }}
        sasl: {{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") $root.Values.kafka.sasl.mechanism | quote }}
        {{- end }}
        {{- if include "crowdsound.tls" $root }}
        tls: enable
        {{- end }}
      {{- if $auth }}
      authenticationRef:
        name: {{ $name }}
      {{- end }}
{{- if $auth }}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if include "crowdsound.sasl" $root }}
  # The username comes from the container's environment (the ConfigMap).
  env:
    - parameter: username
      name: KAFKA_SASL_USERNAME
      containerName: {{ $component }}
  {{- end }}
  secretTargetRef:
    {{- if and (include "crowdsound.sasl" $root) (include "crowdsound.strimziUsers" $root) }}
    - parameter: password
      name: {{ include "crowdsound.roleUser" (dict "root" $root "role" $component) }}
      key: password
    {{- else if include "crowdsound.sasl" $root }}
    - parameter: password
      name: {{ include "crowdsound.passwordSecretName" $root }}
      key: {{ include "crowdsound.passwordSecretKey" $root }}
    {{- end }}
    {{- if include "crowdsound.hasCa" $root }}
    - parameter: ca
      name: {{ include "crowdsound.caSecretName" $root }}
      key: {{ include "crowdsound.caSecretKey" $root }}
    {{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if $root.Values.metrics.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $name }}
  namespace: {{ default $root.Release.Namespace $root.Values.metrics.serviceMonitor.namespace }}
  labels:
    {{- include "crowdsound.componentLabels" $ctx | nindent 4 }}
    {{- with $root.Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  namespaceSelector:
    matchNames:
      - {{ $root.Release.Namespace }}
  selector:
    matchLabels:
      {{- include "crowdsound.componentSelectorLabels" $ctx | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $root.Values.metrics.serviceMonitor.interval }}
      scrapeTimeout: {{ $root.Values.metrics.serviceMonitor.scrapeTimeout }}
      relabelings:
        # The same job name as infra/prometheus/prometheus.yml, so alerts and dashboard match.
        - action: replace
          targetLabel: job
          replacement: crowdsound-{{ $component }}
{{- end }}
{{- end }}
