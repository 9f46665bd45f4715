{{/*
Names. They are fixed rather than derived from the release name: the controller binds the ClusterRole
ark-data-plane in agents' namespaces, applies the Secret ark-worker-redis and the ServiceAccount ark-worker there,
and leads through the Lease ark-controller, and its RBAC (deploy/rbac/cluster-role.yaml) names them. So one
release per cluster.
*/}}

{{/* The image every component runs, and the controller hands to the pools it creates. */}}
{{- define "ark.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels of every object; call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "ark.labels" -}}
{{ include "ark.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ark
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | quote }}
{{- end -}}

{{/* What a Deployment selects on: never changes across upgrades (a Deployment's selector is immutable). */}}
{{- define "ark.selectorLabels" -}}
app.kubernetes.io/name: ark
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The Secret holding REDIS_URL: the user's own (redis.existingSecret), else the one this chart writes (from
redis.url, or for the chart's Redis). Also refuses a Redis setting that makes no sense, naming the value.
*/}}
{{- define "ark.redisSecret" -}}
{{- $r := .Values.redis -}}
{{- if and $r.enabled (or $r.url $r.existingSecret) -}}
{{- fail "redis.enabled=true runs a Redis in the release; redis.url and redis.existingSecret are for an external one: set redis.enabled=false to use them" -}}
{{- end -}}
{{- if not (or $r.enabled $r.url $r.existingSecret) -}}
{{- fail "Redis is required: set redis.enabled=true, or redis.url (e.g. redis://:PASSWORD@host:6379/0), or redis.existingSecret (a Secret with the key REDIS_URL)" -}}
{{- end -}}
{{- if and $r.url $r.existingSecret -}}
{{- fail "set redis.url or redis.existingSecret, not both" -}}
{{- end -}}
{{- default "ark-redis" $r.existingSecret -}}
{{- end -}}

{{/*
The chart's Redis password: redis.password, else the one an earlier install generated (kept across upgrades:
the data in Redis and every pod's REDIS_URL stay valid), else a new random one. `helm template` cannot look
the Secret up, so it prints a new one each time.
*/}}
{{- define "ark.redisPassword" -}}
{{- if .Values.redis.password -}}
{{- .Values.redis.password -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "ark-redis" -}}
{{- if and $existing $existing.data (index $existing.data "REDIS_PASSWORD") -}}
{{- index $existing.data "REDIS_PASSWORD" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment every ark component gets: the Redis URL by reference, never by value. */}}
{{- define "ark.redisEnv" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ark.redisSecret" . }}
      key: REDIS_URL
{{- end -}}

{{/* ARK_NAMESPACES, when the release watches only some namespaces. */}}
{{- define "ark.namespacesEnv" -}}
{{- with .Values.controller.namespaces }}
- name: ARK_NAMESPACES
  {{- /* The gateway reads its API keys' Secret in the release namespace: it is watched too. */}}
  value: {{ join "," (($.Values.auth.existingSecret | empty) | ternary . (append . $.Release.Namespace | uniq)) | quote }}
{{- end }}
{{- end -}}

{{/* Provider keys (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) from the user's Secret, if one is named. */}}
{{- define "ark.envFrom" -}}
{{- with .Values.providers.existingSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/* Pod-level security: non-root (the image's user node, uid 1000), the runtime's default seccomp profile. */}}
{{- define "ark.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  fsGroup: 1000
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Container-level security: nothing to escalate to, no capabilities, a read-only root (/tmp is an emptyDir). */}}
{{- define "ark.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* Scheduling and pull settings of a component; call with (dict "ctx" $ "c" .Values.gateway). */}}
{{- define "ark.podScheduling" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The PodDisruptionBudget API: policy/v1 from Kubernetes 1.21, policy/v1beta1 before (gone in 1.25). Installed
on a cluster, Helm knows its kinds ("policy/v1/PodDisruptionBudget"); `helm template` knows only group
versions, whatever --kube-version says, so the version decides there.
*/}}
{{- define "ark.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}
