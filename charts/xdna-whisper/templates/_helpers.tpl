{{/* Chart name, truncated to 63 characters. */}}
{{- define "xdna-whisper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every object: release-chart, or the release name alone when it already holds the chart name. */}}
{{- define "xdna-whisper.fullname" -}}
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

{{/* Object name of a component: <fullname>-<component>, within 63 characters. */}}
{{- define "xdna-whisper.componentName" -}}
{{- printf "%s-%s" (include "xdna-whisper.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{/* Standard labels of every object. */}}
{{- define "xdna-whisper.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "xdna-whisper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: xdna-whisper
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a component's objects: the standard labels and app.kubernetes.io/component. */}}
{{- define "xdna-whisper.componentLabels" -}}
{{ include "xdna-whisper.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of a component's pods (never change for the life of a workload). */}}
{{- define "xdna-whisper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xdna-whisper.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference: repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "xdna-whisper.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Workload namespaces as a JSON list: namespaces.workload, or the release namespace. */}}
{{- define "xdna-whisper.workloadNamespaces" -}}
{{- $list := .Values.namespaces.workload | default (list .Release.Namespace) | uniq -}}
{{- toJson $list -}}
{{- end -}}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "xdna-whisper.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "xdna-whisper.componentName" (dict "root" . "component" "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules of a Role or ClusterRole kept in files/rbac (copied from config/rbac by `make chart-sync`). */}}
{{- define "xdna-whisper.rulesFrom" -}}
{{- $found := dict -}}
{{- range $doc := splitList "\n---" (.root.Files.Get .file) -}}
{{- $obj := fromYaml $doc -}}
{{- if and $obj (eq (get $obj "kind" | default "") $.kind) -}}
{{- $_ := set $found "rules" $obj.rules -}}
{{- end -}}
{{- end -}}
{{- if not $found.rules -}}
{{- fail (printf "chart file %s holds no %s with rules (run make chart-sync)" .file .kind) -}}
{{- end -}}
{{- toYaml $found.rules -}}
{{- end -}}

{{/*
The operator's one permission on Secrets: get (metadata only, by name) of the serving Secrets
it mounts into encoder pods, to report ServingSecretMissing instead of pods stuck in
ContainerCreating. No list or watch: it can read no other Secret.
*/}}
{{- define "xdna-whisper.servingSecretRule" -}}
{{- $names := list -}}
{{- with .Values.encoder.tls.secretName }}{{ $names = append $names . }}{{ end -}}
{{- with .Values.encoder.auth.tokenSecret }}{{ $names = append $names . }}{{ end -}}
{{- if $names -}}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: {{ $names | uniq | toJson }}
  verbs: [get]
{{- end -}}
{{- end -}}

{{/* The operator's rule for KEDA ScaledObjects, only with encoder.autoscaler.kind keda. */}}
{{- define "xdna-whisper.kedaRule" -}}
{{- if eq .Values.encoder.autoscaler.kind "keda" -}}
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}
{{- end -}}

{{/* Whether the NodeFeatureRule is rendered: nodeFeatureRule.create true, or auto and the cluster serves the kind. */}}
{{- define "xdna-whisper.nodeFeatureRule" -}}
{{- $c := .Values.nodeFeatureRule.create -}}
{{- if or (eq (toString $c) "true") (and (eq (toString $c) "auto") (.Capabilities.APIVersions.Has "nfd.k8s-sigs.io/v1alpha1/NodeFeatureRule")) -}}
true
{{- end -}}
{{- end -}}

{{/* NFD PCI IDs (4 lower-case hex digits, no 0x) of every device ID the device plugin advertises, as a JSON list. */}}
{{- define "xdna-whisper.pciDeviceIDs" -}}
{{- $ids := list -}}
{{- range .Values.devicePlugin.deviceIDs -}}
{{- $ids = append $ids (lower (trimPrefix "0x" (lower .))) -}}
{{- end -}}
{{- if .Values.devicePlugin.xdna2.enabled -}}
{{- range .Values.devicePlugin.xdna2.deviceIDs -}}
{{- $ids = append $ids (lower (trimPrefix "0x" (lower .))) -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $ids) -}}
{{- end -}}

{{/* The node label NFD puts on nodes with PCI device <id> (class 1180, vendor 1022) under our NodeFeatureRule. */}}
{{- define "xdna-whisper.pciLabel" -}}
feature.node.kubernetes.io/pci-1180_1022_{{ . }}.present
{{- end -}}

{{/* Security context every container of the chart shares: nothing privileged, no capability,
read-only root filesystem, RuntimeDefault seccomp. */}}
{{- define "xdna-whisper.containerSecurity" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* NFD PCI IDs of the NPUs the DRA driver publishes (its fixed allow-list: 1502, plus 17f0 with
draDriver.xdna2.enabled), as a JSON list. */}}
{{- define "xdna-whisper.draPCIDeviceIDs" -}}
{{- $ids := list "1502" -}}
{{- if .Values.draDriver.xdna2.enabled -}}
{{- $ids = append $ids "17f0" -}}
{{- end -}}
{{- toJson $ids -}}
{{- end -}}

{{/* Every PCI ID a node label is needed for: the device plugin's and, when it is deployed, the DRA driver's. */}}
{{- define "xdna-whisper.nfdPCIDeviceIDs" -}}
{{- $ids := include "xdna-whisper.pciDeviceIDs" . | fromJsonArray -}}
{{- if .Values.draDriver.enabled -}}
{{- $ids = concat $ids (include "xdna-whisper.draPCIDeviceIDs" . | fromJsonArray) -}}
{{- end -}}
{{- toJson (uniq $ids) -}}
{{- end -}}
