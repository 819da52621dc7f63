"""The simulator answers the real `kubernetes` (sync) client like an API server would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kube.sim import Simulator


def pod(name: str, **spec: object) -> dict:
    container = {"name": "main", "image": "python:3.11", "command": ["sleep", "60"]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], **spec},
    }


def test_discovery_lists_core_rbac_and_crd_resources(k8s_cluster: Simulator) -> None:
    api = client.ApiClient(k8s_cluster.client().configuration)
    assert client.VersionApi(api).get_code().git_version.startswith("v1.37")
    core = client.CoreV1Api(api).get_api_resources()
    names = {r.name for r in core.resources}
    assert {
        "pods",
        "pods/log",
        "pods/status",
        "persistentvolumeclaims",
        "events",
        "secrets",
        "configmaps",
        "serviceaccounts",
        "nodes",
    } <= names
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {
        "rbac.authorization.k8s.io",
        "events.k8s.io",
        "kubeflow.org",
        "trainer.kubeflow.org",
    } <= set(groups)
    kubeflow = client.CustomObjectsApi(api).get_api_resources("kubeflow.org", "v1")
    assert {"pytorchjobs", "pytorchjobs/status", "tfjobs", "mpijobs"} <= {
        r.name for r in kubeflow.resources
    }


def test_create_get_conflicts_and_generate_name(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    created = v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    assert (
        created.metadata.uid
        and created.metadata.resource_version
        and created.metadata.creation_timestamp
    )
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert error.value.status == 409 and '"reason":"AlreadyExists"' in error.value.body.replace(
        " ", ""
    )
    with pytest.raises(ApiException) as error:
        v1.read_namespaced_config_map("nope", "default")
    assert error.value.status == 404 and 'configmaps \\"nope\\" not found' in error.value.body
    generated = v1.create_namespaced_secret(
        "default", {"metadata": {"generateName": "tok-"}, "stringData": {"k": "v"}}
    )
    assert generated.metadata.name.startswith("tok-") and len(generated.metadata.name) == 9
    assert generated.data == {"k": "dg=="} and generated.type == "Opaque"


def test_pod_defaults_and_pending_status(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    spec = pod("p")
    spec["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    created = v1.create_namespaced_pod("default", spec)
    assert created.status.phase == "Pending"
    assert created.metadata.generation == 1 and created.metadata.namespace == "default"
    assert (
        created.spec.restart_policy == "Always" and created.spec.service_account_name == "default"
    )
    assert created.spec.containers[0].resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert created.status.qos_class == "Guaranteed"


def test_pod_needs_its_service_account_and_namespace(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod("default", pod("p", serviceAccountName="hub"))
    assert error.value.status == 403 and 'serviceaccount \\"hub\\" not found' in error.value.body
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod("nowhere", pod("p"))
    assert error.value.status == 404
    v1.create_namespace({"metadata": {"name": "team"}})
    assert v1.read_namespaced_service_account("default", "team").metadata.name == "default"


def test_list_with_label_and_field_selectors(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    for name, labels in [
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db", "env": "prod"}),
        ("c", {"tier": "web"}),
    ]:
        v1.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(**kw: str) -> list[str]:
        listed = v1.list_namespaced_config_map("default", **kw)
        assert int(listed.metadata.resource_version) > 0
        return sorted(i.metadata.name for i in listed.items)

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier==web,env=prod") == ["a"]
    assert names(label_selector="tier!=web") == ["b"]
    assert names(label_selector="tier in (db, web),env") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["b"]
    assert names(label_selector="!env") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b,metadata.namespace=default") == ["a", "c"]
    with pytest.raises(ApiException) as error:
        names(field_selector="data.x=1")
    assert error.value.status == 400


def test_pod_field_selectors_on_phase_and_node(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod("default", pod("runs"))
    k8s_cluster.wait_for(
        lambda: v1.read_namespaced_pod("runs", "default").status.phase == "Running"
    )
    node = v1.read_namespaced_pod("runs", "default").spec.node_name
    running = v1.list_pod_for_all_namespaces(
        field_selector=f"status.phase=Running,spec.nodeName={node}"
    )
    assert [p.metadata.name for p in running.items] == ["runs"]
    assert v1.list_namespaced_pod("default", field_selector="status.phase=Pending").items == []
    v1.delete_namespaced_pod("runs", "default", grace_period_seconds=0)


def test_limit_and_continue(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    for i in range(5):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    first = v1.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata.remaining_item_count == 3
    rest = v1.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [i.metadata.name for i in first.items + rest.items] == [f"cm{i}" for i in range(5)]


def test_patch_kinds_and_replace_conflict(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_pod("default", pod("p"))
    patched = v1.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"extra": "yes", "app": None}}}
    )
    assert patched.metadata.labels == {"extra": "yes"}
    patched = v1.patch_namespaced_pod(
        "p", "default", [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    )
    assert patched.metadata.annotations == {"a": "b"}
    v1.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "svc"},
            "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"a": "b"}},
        },
    )
    svc = v1.patch_namespaced_service(
        "svc", "default", {"spec": {"ports": [{"port": 81, "name": "other"}]}}
    )
    assert sorted(p.port for p in svc.spec.ports) == [80, 81]  # strategic merge by port
    assert svc.spec.cluster_ip.startswith("10.96.")
    cm = v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    cm.data = {"a": "2"}
    updated = v1.replace_namespaced_config_map("cm", "default", cm)
    assert updated.metadata.resource_version != cm.metadata.resource_version
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as error:
        v1.replace_namespaced_config_map("cm", "default", cm)  # stale resourceVersion
    assert error.value.status == 409 and "the object has been modified" in error.value.body
    with pytest.raises(ApiException) as error:
        v1.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert error.value.status == 422 and "pod updates may not change fields" in error.value.body


def test_status_subresource(k8s_cluster: Simulator) -> None:
    api = client.CustomObjectsApi(k8s_cluster.client())
    job = pytorchjob("train")
    api.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", job)
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Created",
                    "status": "True",
                    "reason": "PyTorchJobCreated",
                    "message": "made",
                }
            ]
        }
    }
    updated = api.patch_namespaced_custom_object_status(
        "kubeflow.org", "v1", "default", "pytorchjobs", "train", status
    )
    assert updated["status"]["conditions"][0]["type"] == "Created"
    spec_only = api.patch_namespaced_custom_object(
        "kubeflow.org",
        "v1",
        "default",
        "pytorchjobs",
        "train",
        {"status": {"conditions": []}, "metadata": {"labels": {"x": "y"}}},
    )
    assert (
        spec_only["status"]["conditions"][0]["type"] == "Created"
    )  # the main resource ignores status
    assert spec_only["metadata"]["generation"] == 1


def pytorchjob(name: str, **replica_spec: object) -> dict:
    template = {
        "spec": {
            "containers": [
                {"name": "pytorch", "image": "pytorch:2", "command": ["python", "-c", "print(1)"]}
            ]
        }
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "restartPolicy": "Never",
                    "template": template,
                    **replica_spec,
                }
            }
        },
    }


def test_unknown_pod_field_is_refused_with_422_naming_it(k8s_cluster: Simulator) -> None:
    # The sync client (pydantic models) refuses unknown fields itself, so send the body raw.
    bad = pod("p")
    bad["spec"]["containers"][0]["gpuCount"] = 1
    code, status = k8s_cluster.request("POST", "/api/v1/namespaces/default/pods", bad)
    assert code == 422 and status["kind"] == "Status" and status["reason"] == "Invalid"
    assert (
        status["message"]
        == 'Pod "p" is invalid: spec.containers[0].gpuCount: Forbidden: unknown field "gpuCount"'
    )
    assert status["details"]["causes"][0]["field"] == "spec.containers[0].gpuCount"
    assert k8s_cluster.objects("pods") == []


def test_invalid_names_and_missing_fields_are_422(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod("default", pod("Bad_Name"))
    assert error.value.status == 422 and "RFC 1123 subdomain" in error.value.body
    code, status = k8s_cluster.request(
        "POST",
        "/api/v1/namespaces/default/pods",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}},
    )
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec.containers[0].name"
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_config_map(
            "default", {"metadata": {"name": "cm", "labels": {"user": "a@b"}}}
        )
    assert error.value.status == 422 and "a valid label must be" in error.value.body


def test_custom_resources_are_checked_against_their_crd(k8s_cluster: Simulator) -> None:
    api = client.CustomObjectsApi(k8s_cluster.client())
    missing = pytorchjob("bad")
    del missing["spec"]["pytorchReplicaSpecs"]
    with pytest.raises(ApiException) as error:
        api.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", missing)
    assert error.value.status == 422
    assert (
        'PyTorchJob.kubeflow.org \\"bad\\" is invalid: spec.pytorchReplicaSpecs: Required value'
        in error.value.body
    )
    wrong_type = pytorchjob("bad", replicas="two")
    with pytest.raises(ApiException) as error:
        api.create_namespaced_custom_object(
            "kubeflow.org", "v1", "default", "pytorchjobs", wrong_type
        )
    assert (
        error.value.status == 422 and "spec.pytorchReplicaSpecs.Master.replicas" in error.value.body
    )
    unknown = pytorchjob("bad", gpus=1)
    with pytest.raises(ApiException) as error:
        api.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", unknown)
    assert error.value.status == 422 and "spec.pytorchReplicaSpecs.Master.gpus" in error.value.body
    assert api.create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", pytorchjob("ok")
    )["metadata"]["uid"]


def test_trainer_runtimes_are_preloaded(k8s_cluster: Simulator) -> None:
    api = client.CustomObjectsApi(k8s_cluster.client())
    runtimes = api.list_cluster_custom_object(
        "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes"
    )
    assert "torch-distributed" in {r["metadata"]["name"] for r in runtimes["items"]}


def test_dry_run_stores_nothing(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespaced_config_map("default", {"metadata": {"name": "cm"}}, dry_run="All")
    assert k8s_cluster.objects("configmaps") == []


def test_owner_references_are_garbage_collected(k8s_cluster: Simulator) -> None:
    c = k8s_cluster.client()
    api, v1 = client.CustomObjectsApi(c), client.CoreV1Api(c)
    job = api.create_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs", pytorchjob("owner")
    )
    ref = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "name": "owner",
        "uid": job["metadata"]["uid"],
        "controller": True,
    }
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "owned-cm", "ownerReferences": [ref]}}
    )
    v1.create_namespaced_pod(
        "default", {**pod("owned-pod"), "metadata": {"name": "owned-pod", "ownerReferences": [ref]}}
    )
    v1.create_namespaced_config_map("default", {"metadata": {"name": "free"}})
    api.delete_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", "owner")
    k8s_cluster.wait_for(lambda: not k8s_cluster.objects("pods"), 40)
    assert [c["metadata"]["name"] for c in k8s_cluster.objects("configmaps")] == ["free"]


def test_orphan_propagation_keeps_dependents(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    owner = v1.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "dep", "ownerReferences": [ref]}}
    )
    v1.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    dep = v1.read_namespaced_config_map("dep", "default")
    assert not dep.metadata.owner_references


def test_events_api_views_core_events(k8s_cluster: Simulator) -> None:
    c = k8s_cluster.client()
    v1 = client.CoreV1Api(c)
    target = v1.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    involved = {
        "kind": "ConfigMap",
        "name": "cm",
        "namespace": "default",
        "uid": target.metadata.uid,
        "apiVersion": "v1",
    }
    v1.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "cm.1"},
            "involvedObject": involved,
            "reason": "Checked",
            "message": "fine",
            "type": "Normal",
        },
    )
    new = client.EventsV1Api(c).list_namespaced_event("default")
    assert [(e.reason, e.note, e.regarding.name) for e in new.items] == [("Checked", "fine", "cm")]
    listed = v1.list_namespaced_event(
        "default", field_selector="involvedObject.name=cm,reason=Checked"
    )
    assert len(listed.items) == 1


def test_namespace_deletion_removes_its_objects(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    v1.create_namespace({"metadata": {"name": "gone"}})
    v1.create_namespaced_config_map("gone", {"metadata": {"name": "cm"}})
    v1.delete_namespace("gone")
    assert k8s_cluster.objects("configmaps", "gone") == []
    with pytest.raises(ApiException) as error:
        v1.read_namespace("gone")
    assert error.value.status == 404


def test_wrong_token_is_401(k8s_cluster: Simulator) -> None:
    request = urllib.request.Request(
        k8s_cluster.api_url + "/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert error.value.code == 401 and json.load(error.value)["reason"] == "Unauthorized"


def test_deletecollection_by_label(k8s_cluster: Simulator) -> None:
    v1 = client.CoreV1Api(k8s_cluster.client())
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        v1.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"team": team}}}
        )
    v1.delete_collection_namespaced_config_map("default", label_selector="team=x")
    assert [c["metadata"]["name"] for c in k8s_cluster.objects("configmaps")] == ["c"]
