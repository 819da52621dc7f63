"""The jobs service's Kubernetes client, found as KubeSpawner finds the hub's: in a pod, its
service account; elsewhere a kubeconfig."""

from __future__ import annotations

import kubernetes.client
import kubernetes.config
from kubernetes.config.config_exception import ConfigException


def api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """A client from `kubeconfig` if given; else in-cluster where the pod has a service account,
    else $KUBECONFIG or ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            return kubernetes.client.ApiClient(configuration)
        except ConfigException:
            pass
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return kubernetes.client.ApiClient(configuration)
