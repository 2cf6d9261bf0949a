{{- define "plumbline.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "plumbline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plumbline.labels" -}}
app.kubernetes.io/name: {{ include "plumbline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "plumbline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plumbline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plumbline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "plumbline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the App key, the webhook secret and (optionally) the Redis URL. */}}
{{- define "plumbline.credentialsSecret" -}}
{{- if .Values.credentials.externalSecret.enabled -}}
{{- printf "%s-credentials" (include "plumbline.fullname" .) -}}
{{- else -}}
{{- required "credentials.existingSecret (or credentials.externalSecret.enabled) is required: secrets never go in values" .Values.credentials.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "plumbline.kubeconfigSecret" -}}
{{- if .Values.kubeconfigs.externalSecret.enabled -}}
{{- printf "%s-kubeconfigs" (include "plumbline.fullname" .) -}}
{{- else -}}
{{- .Values.kubeconfigs.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "plumbline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Environment every process needs: Redis and how to log. */}}
{{- define "plumbline.commonEnv" -}}
{{- if .Values.redis.url }}
- name: REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: { name: {{ include "plumbline.credentialsSecret" . }}, key: redis-url }
{{- end }}
- name: PLUMBLINE_QUEUE_PREFIX
  value: {{ .Values.redis.queuePrefix | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* The worker's: the App identity, the registry, scratch space. The receiver never sees the App key. */}}
{{- define "plumbline.workerEnv" -}}
- name: GITHUB_APP_ID
  value: {{ required "github.appId is required" .Values.github.appId | quote }}
- name: GITHUB_API_URL
  value: {{ .Values.github.apiUrl | quote }}
- name: GITHUB_PRIVATE_KEY
  valueFrom:
    secretKeyRef: { name: {{ include "plumbline.credentialsSecret" . }}, key: github-private-key }
- name: PLUMBLINE_CLUSTERS
  value: /etc/plumbline/clusters.yaml
- name: PLUMBLINE_CACHE_DIR
  value: /var/cache/plumbline
{{- /* Statuses link to the status page only when there is one to open. */}}
{{- if and .Values.publicUrl (ne .Values.statusPage.mode "off") }}
- name: PLUMBLINE_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
{{- end }}
{{- end -}}

{{- define "plumbline.remoteRef" -}}
key: {{ required "every remoteRef needs a key" .key | quote }}
{{- with .property }}
property: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Plumbline's own records (inventory, drift baselines) live here in every cluster (ADR 5). */}}
{{- define "plumbline.recordsNamespace" -}}
plumbline-system
{{- end -}}

{{/* Whether any registry entry is the cluster Plumbline runs in: only then does it need RBAC here. */}}
{{- define "plumbline.inCluster" -}}
{{- range .Values.clusters }}{{ if .inCluster }}true{{ end }}{{ end -}}
{{- end -}}

{{/*
Namespaces where Plumbline's own identity applies and prunes (rbac.mode=narrow): rbac.namespaces, plus the
`namespaces` of in-cluster registry entries that do not impersonate a serviceAccount (those write as that
account, whose RBAC is the operator's). A JSON list.
*/}}
{{- define "plumbline.applyNamespaces" -}}
{{- $namespaces := .Values.rbac.namespaces | default list -}}
{{- range .Values.clusters -}}
{{- if and .inCluster (not .serviceAccount) -}}
{{- $namespaces = concat $namespaces (.namespaces | default list) -}}
{{- end -}}
{{- end -}}
{{- $namespaces | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/*
ServiceAccounts Plumbline impersonates (registry `serviceAccount`, `namespace/name` or `name` in
plumbline-system), as a JSON map namespace → names: rbac.impersonate plus the in-cluster entries'.
*/}}
{{- define "plumbline.impersonated" -}}
{{- $accounts := .Values.rbac.impersonate | default list -}}
{{- range .Values.clusters -}}
{{- if and .inCluster .serviceAccount -}}
{{- $accounts = append $accounts .serviceAccount -}}
{{- end -}}
{{- end -}}
{{- $byNamespace := dict -}}
{{- range $accounts | uniq -}}
{{- $parts := splitList "/" . -}}
{{- $namespace := ternary (first $parts) (include "plumbline.recordsNamespace" $) (eq (len $parts) 2) -}}
{{- $name := last $parts -}}
{{- $names := append (get $byNamespace $namespace | default list) $name -}}
{{- $_ := set $byNamespace $namespace ($names | uniq | sortAlpha) -}}
{{- end -}}
{{- $byNamespace | toJson -}}
{{- end -}}

{{/* One NetworkPolicy egress rule: a destination's ports, to its peers (all addresses when none). */}}
{{- define "plumbline.egressRule" -}}
- ports: {{- toYaml .ports | nindent 4 }}
  {{- with .to }}
  to: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
