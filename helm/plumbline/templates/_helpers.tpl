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

{{/*
The process's own shutdown grace for a pod's terminationGracePeriodSeconds (the argument): 10 s shorter,
or half of it below 20 s, so that the process exits (and says what it gave up on) before the SIGKILL.
*/}}
{{- define "plumbline.shutdownGraceEnv" -}}
{{- $seconds := int . -}}
- name: PLUMBLINE_SHUTDOWN_GRACE_MS
  value: {{ mul (max (sub $seconds 10) (div $seconds 2)) 1000 | quote }}
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

{{/* Where the worker finds the chart sources' files: one folder per `charts.repositories` entry. */}}
{{- define "plumbline.chartFilesDir" -}}
/etc/plumbline/charts
{{- end -}}

{{- define "plumbline.chartSourcesSecret" -}}
{{- printf "%s-chart-sources" (include "plumbline.fullname" .) -}}
{{- end -}}

{{/*
The files of the chart sources (credentials, CAs), checked, as a JSON list: each has the entry (`repository`),
the file's `path` under plumbline.chartFilesDir, and where it comes from — `configMap` or `secret` (a name and
a `key`), or `external`: a store reference (`refs`: secretKey → remoteRef) that the chart's ExternalSecret
turns into `key` of its own Secret with the ESO template `template`. A credentials file is
{"username": …, "password": …} (what src/charts/chart-credentials.ts reads); a CA file is PEM.
*/}}
{{- define "plumbline.chartFiles" -}}
{{- $files := list -}}
{{- $names := dict -}}
{{- range $i, $r := .Values.charts.repositories -}}
{{- $where := printf "charts.repositories[%d] (%s)" $i $r.name -}}
{{- if hasKey $names $r.name -}}
{{- fail (printf "%s: another entry has this name; each entry's files are mounted under %s/<name>/" $where (include "plumbline.chartFilesDir" $)) -}}
{{- end -}}
{{- $_ := set $names $r.name true -}}
{{- range $field := list "url" "mirror" -}}
{{- if regexMatch "^[a-zA-Z]+://[^/]*@" (get $r $field | default "") -}}
{{- fail (printf "%s: %s must not carry credentials (user:password@): name where they are in credentials" $where $field) -}}
{{- end -}}
{{- end -}}
{{- with $r.credentials -}}
{{- $path := printf "%s/credentials.json" $r.name -}}
{{- if and .existingSecret .externalSecret -}}
{{- fail (printf "%s: credentials: set existingSecret or externalSecret, not both" $where) -}}
{{- else if .existingSecret -}}
{{- $files = append $files (dict "repository" $r.name "path" $path "secret" .existingSecret "key" (default "credentials.json" .key)) -}}
{{- else if .externalSecret -}}
{{- $user := printf "%s-username" $r.name -}}
{{- $password := printf "%s-password" $r.name -}}
{{- $template := printf "{\"username\": {{ index . %q | toJson }}, \"password\": {{ index . %q | toJson }}}" $user $password -}}
{{- $refs := list (dict "secretKey" $user "remoteRef" .externalSecret.username) (dict "secretKey" $password "remoteRef" .externalSecret.password) -}}
{{- $files = append $files (dict "repository" $r.name "path" $path "external" true "key" (printf "%s-credentials.json" $r.name) "template" $template "refs" $refs) -}}
{{- else -}}
{{- fail (printf "%s: credentials: set existingSecret (a Secret's key holding {\"username\": …, \"password\": …}) or externalSecret (where the username and password are in the store)" $where) -}}
{{- end -}}
{{- end -}}
{{- with $r.ca -}}
{{- $path := printf "%s/ca.pem" $r.name -}}
{{- $set := list -}}
{{- range $field := list "configMap" "existingSecret" "externalSecret" -}}
{{- if get $r.ca $field }}{{ $set = append $set $field }}{{ end -}}
{{- end -}}
{{- if ne (len $set) 1 -}}
{{- fail (printf "%s: ca: set configMap, existingSecret or externalSecret (exactly one; set: %s)" $where (join ", " $set | default "none")) -}}
{{- else if .configMap -}}
{{- $files = append $files (dict "repository" $r.name "path" $path "configMap" .configMap "key" (default "ca.crt" .key)) -}}
{{- else if .existingSecret -}}
{{- $files = append $files (dict "repository" $r.name "path" $path "secret" .existingSecret "key" (default "ca.crt" .key)) -}}
{{- else -}}
{{- $ca := printf "%s-ca" $r.name -}}
{{- $files = append $files (dict "repository" $r.name "path" $path "external" true "key" (printf "%s-ca.pem" $r.name) "template" (printf "{{ index . %q }}" $ca) "refs" (list (dict "secretKey" $ca "remoteRef" .externalSecret))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $files | toJson -}}
{{- end -}}

{{/*
The registry's `charts:` (src/charts/chart-sources.ts): the entries without the chart's own fields (`name`,
where their files come from), with `credentials` and `caFile` the paths the worker mounts them at. None when
the values set no policy, so such an install's registry is unchanged.
*/}}
{{- define "plumbline.registry" -}}
{{- $registry := dict "clusters" .Values.clusters -}}
{{- $charts := .Values.charts -}}
{{- if or $charts.repositories $charts.allowPrivateAddresses -}}
{{- $dir := include "plumbline.chartFilesDir" . -}}
{{- $files := include "plumbline.chartFiles" . | fromJsonArray -}}
{{- $repositories := list -}}
{{- range $charts.repositories -}}
{{- $entry := pick . "url" "mirror" "plainHttp" -}}
{{- $name := .name -}}
{{- range $files -}}
{{- if eq .repository $name -}}
{{- $_ := set $entry (ternary "credentials" "caFile" (hasSuffix "/credentials.json" .path)) (printf "%s/%s" $dir .path) -}}
{{- end -}}
{{- end -}}
{{- $repositories = append $repositories $entry -}}
{{- end -}}
{{- $_ := set $registry "charts" (dict "repositories" $repositories "allowPrivateAddresses" (default false $charts.allowPrivateAddresses)) -}}
{{- end -}}
{{- toYaml $registry -}}
{{- end -}}

{{/*
The worker's volume of chart-source files (none without any): one projected volume, each file at its path,
read-only to the worker's user. Not a subPath mount, so a rotated Secret reaches the running worker (it
reads the files at each use).
*/}}
{{- define "plumbline.chartFilesVolume" -}}
{{- $sources := dict -}}
{{- range include "plumbline.chartFiles" . | fromJsonArray -}}
{{- $kind := ternary "configMap" "secret" (hasKey . "configMap") -}}
{{- $name := ternary (include "plumbline.chartSourcesSecret" $) (get . $kind) (hasKey . "external") -}}
{{- $id := printf "%s/%s" $kind $name -}}
{{- $source := get $sources $id | default (dict "kind" $kind "name" $name "items" list) -}}
{{- $_ := set $source "items" (append $source.items (dict "key" .key "path" .path)) -}}
{{- $_ := set $sources $id $source -}}
{{- end -}}
{{- if $sources -}}
name: chart-sources
projected:
  defaultMode: 256 # 0400
  sources:
    {{- range $id := keys $sources | sortAlpha }}
    {{- $source := get $sources $id }}
    - {{ $source.kind }}:
        name: {{ $source.name }}
        items: {{- toYaml $source.items | nindent 10 }}
    {{- end }}
{{- end -}}
{{- end -}}
