{{/* Names, labels and addresses shared by the templates. */}}

{{/* The prefix of every object's name: <release>-hubflow, or fullnameOverride. */}}
{{- define "hubflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hubflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select one component: pass (dict "root" $ "component" "hub"). */}}
{{- define "hubflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hubflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels: the selector labels plus chart and version. */}}
{{- define "hubflow.labels" -}}
{{ include "hubflow.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The namespace of users' servers, workspaces and jobs. */}}
{{- define "hubflow.usersNamespace" -}}
{{- default .Release.Namespace .Values.users.namespace -}}
{{- end -}}

{{- define "hubflow.hubService" -}}{{ include "hubflow.fullname" . }}-hub{{- end -}}
{{- define "hubflow.proxyApiService" -}}{{ include "hubflow.fullname" . }}-proxy-api{{- end -}}
{{- define "hubflow.proxyPublicService" -}}{{ include "hubflow.fullname" . }}-proxy-public{{- end -}}

{{/* The Secret holding the token the hub and the proxy share. */}}
{{- define "hubflow.proxyTokenSecret" -}}
{{- default (printf "%s-proxy-token" (include "hubflow.fullname" .)) .Values.proxy.authTokenSecret -}}
{{- end -}}

{{/* The Secret holding the hub's JUPYTERHUB_CRYPT_KEY (key `crypt-key`). */}}
{{- define "hubflow.cryptKeySecret" -}}
{{- default (printf "%s-hub-crypt-key" (include "hubflow.fullname" .)) .Values.hub.cryptKeySecret -}}
{{- end -}}

{{/* The hub's address as users' pods (maybe in another namespace) and the proxy reach it. */}}
{{- define "hubflow.hubHost" -}}
{{ include "hubflow.hubService" . }}.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* An image reference from {name, tag}; an empty tag means the chart's appVersion. */}}
{{- define "hubflow.image" -}}
{{ .image.name }}:{{ default .root.Chart.AppVersion .image.tag }}
{{- end -}}

{{/* The fixed ports: hub API, jobs API, proxy's public and API ports. */}}
{{- define "hubflow.port.hub" -}}8081{{- end -}}
{{- define "hubflow.port.jobs" -}}8090{{- end -}}
{{- define "hubflow.port.http" -}}8000{{- end -}}
{{- define "hubflow.port.proxyApi" -}}8001{{- end -}}

{{/* An egress rule to the internet: every address outside the private, link-local (the cloud
metadata address among them), loopback and shared ranges. */}}
{{- define "hubflow.internetEgress" -}}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 127.0.0.0/8, 100.64.0.0/10]
{{- end -}}
