"""Fixtures for the Kubernetes tests, all on the real test cluster (docs/testing-kubernetes.md):
the cluster and a namespace per test (`real_cluster`, `kube_ns`), a whole hub on it (`kube_hub`,
`kube_hub_factory`), KubeSpawner's client and test nodes (`kubespawner_ns`, `agent_nodes`), the
fault proxy (`hub_fault_proxy`), a control plane without Kubeflow (`bare_cluster`, `bare_ns`), the
jobs service (`jobs_service`) and warm pools (`kube_pools`)."""

from tests.kube.cluster.fixtures import kube_ns, real_cluster  # noqa: F401 (the real cluster)
from tests.kube.cluster.hub_fixtures import kube_hub, kube_hub_factory  # noqa: F401 (a whole hub)
from tests.kube.cluster.jobs_fixtures import bare_cluster, bare_ns, jobs_ns, jobs_service, stand_in  # noqa: F401, E501
from tests.kube.cluster.pool_fixtures import kube_pools, kubeflow_api  # noqa: F401 (warm pools)
from tests.kube.cluster.spawner_fixtures import (  # noqa: F401, E501
    agent_nodes,
    hub_fault_proxy,
    kubespawner_ns,
    kubespawner_via_proxy,
)
