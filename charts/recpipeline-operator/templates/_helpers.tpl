{{/*
Naming: every object of the release is named <fullname> or <fullname>-<role>.
<fullname> is the release name when it already contains the chart name
(`helm install recpipeline-operator …`), else <release>-<chart>; Kubernetes
names are cut at 63 characters.
*/}}
{{- define "recpipeline-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "recpipeline-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The chart label: name-version, with "+" (invalid in a label) as "_". */}}
{{- define "recpipeline-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the manager's pods; they never change on upgrade. */}}
{{- define "recpipeline-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recpipeline-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "recpipeline-operator.labels" -}}
helm.sh/chart: {{ include "recpipeline-operator.chart" . }}
{{ include "recpipeline-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recpipeline
{{- end }}

{{/* The ServiceAccount the manager runs as. */}}
{{- define "recpipeline-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "recpipeline-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: the digest wins, then the
tag, then the chart's appVersion. Call with (list <image values> $).
*/}}
{{- define "recpipeline-operator.image" -}}
{{- $img := index . 0 }}
{{- $root := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag | toString) }}
{{- end }}
{{- end }}

{{/*
The manager's permissions, shared by the ClusterRole and the per-namespace
Roles. They must equal the rules of config/rbac/role.yaml, which controller-gen
generates from the +kubebuilder:rbac markers of controllers/; a test in
charts/ compares the two.
*/}}
{{- define "recpipeline-operator.managerRules" -}}
- apiGroups:
  - ""
  resources:
  - configmaps
  - serviceaccounts
  - services
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - ""
  resources:
  - pods
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - ""
  resources:
  - secrets
  verbs:
  - create
- apiGroups:
  - apps
  resources:
  - deployments
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - autoscaling
  resources:
  - horizontalpodautoscalers
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - batch
  resources:
  - cronjobs
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - batch
  resources:
  - jobs
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
  - patch
- apiGroups:
  - networking.k8s.io
  resources:
  - networkpolicies
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - policy
  resources:
  - poddisruptionbudgets
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - rbac.authorization.k8s.io
  resources:
  - rolebindings
  - roles
  verbs:
  - create
  - delete
  - get
  - list
  - patch
  - update
  - watch
- apiGroups:
  - serving.recpipeline.dev
  resources:
  - recpipelines
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - serving.recpipeline.dev
  resources:
  - recpipelines/finalizers
  verbs:
  - update
- apiGroups:
  - serving.recpipeline.dev
  resources:
  - recpipelines/status
  verbs:
  - get
  - patch
  - update
{{- end }}
