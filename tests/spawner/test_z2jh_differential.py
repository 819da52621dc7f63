"""Differential test: a z2jh profileList builds, in hubflow, the pod that KubeSpawner builds.

hypothesis writes profile lists (overrides at profile, option and choice level, free-text
choices with regexes, several defaults, keys KubeSpawner ignores, empty lists). For each profile
and each combination of its choices (and a valid free-text value), the pod is built by plain
KubeSpawner and by hubflow's spawner, both offline (no API server). Plain KubeSpawner starts from
the settings hubflow sets before any override (workspace, HUBFLOW_* environment, security
context), so every field the overrides set must come out the same; the only difference allowed
is the one hubflow makes by design (docs/profiles.md): entries hubflow adds to a list
(tolerations, volumes, mounts) stay, ahead of the override's list, unless they clash with it.
Every hubflow pod is checked against the Kubernetes schema (kubernetes-validate, strict).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from slugify import slugify
from tornado import web

from hubflow.profiles import load_profiles
from hubflow.profiles.choices import DEFAULT
from hubflow.profiles.merge import toleration_identity
from hubflow.spawner.kubernetes import HubflowKubeSpawner
from tests.spawner.test_kube_manifest import K8S_VERSION, KUBECONFIG

GROUP = "team"
IMAGES = st.sampled_from(
    ["quay.io/jupyter/scipy-notebook:2025-01-13", "quay.io/jupyter/pytorch-notebook:cuda12"]
)
LABELS = st.dictionaries(
    st.sampled_from(["team", "hub.example.org/gpu"]),
    st.one_of(st.sampled_from(["a", "b"]), st.none()),
    max_size=2,
)
TOLERATIONS = st.lists(
    st.sampled_from(
        [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        ]
    ),
    max_size=2,
)
VOLUMES = st.lists(
    st.sampled_from(
        [
            {"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}},
            {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}},
            {"name": "workspace", "emptyDir": {}},
        ]
    ),
    max_size=2,
    unique_by=lambda volume: volume["name"],
)
MOUNTS = st.lists(
    st.sampled_from(
        [
            {"name": "data", "mountPath": "/data"},
            {"name": "home", "mountPath": "/home/jovyan"},
            {"name": "workspace", "mountPath": "/scratch"},
        ]
    ),
    max_size=2,
    unique_by=lambda mount: mount["name"],
)
#: KubeSpawner settings, a deprecated name, and keys KubeSpawner ignores inside an override.
SETTINGS = {
    "image": IMAGES,
    "image_spec": IMAGES,
    "cpu_limit": st.sampled_from([0, 1, 2, 4.5]),  # 0: no limit
    "cpu_guarantee": st.sampled_from([0.1, 0.5]),
    "mem_limit": st.sampled_from(["1G", "4G", "512M", 2**31]),
    "mem_guarantee": st.sampled_from(["256M", 2**27]),
    "environment": st.dictionaries(
        st.sampled_from(["A", "B", "HUBFLOW_PROFILE"]),
        st.one_of(st.sampled_from(["1", "x"]), st.none()),
        max_size=2,
    ),
    "node_selector": LABELS,
    "extra_labels": LABELS,
    "tolerations": TOLERATIONS,
    "extra_resource_limits": st.dictionaries(
        st.sampled_from(["nvidia.com/gpu", "amd.com/gpu"]), st.sampled_from(["1", "2"]), max_size=1
    ),
    "default_url": st.sampled_from(["/lab", "/rstudio", "/desktop", "/vscode"]),
    "volumes": VOLUMES,
    "volume_mounts": MOUNTS,
    "storage_capacity": st.sampled_from(["5Gi", "20Gi"]),
    "default": st.booleans(),
    "x_form_hint": st.just("ignored by KubeSpawner"),
}
OVERRIDES = st.fixed_dictionaries({}, optional=SETTINGS)
#: validation_regex -> a value it accepts (KubeSpawner matches from the start: re.match).
REGEXES = {
    None: "2025-02-03",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$": "2024-12-02",
    "^[a-z]+": "abc-1.2",
    "^.+:.+$": "quay.io/jupyter/scipy-notebook:2024-12-02",
}
TEMPLATES = st.fixed_dictionaries(
    {},
    optional={
        "image": st.just("quay.io/jupyter/scipy-notebook:{value}"),
        "extra_labels": st.just({"user-tag": "{value}"}),
        "environment": st.just({"TAG": "{value}", "WHERE": "/home/{username}/{value}"}),
        "cpu_limit": st.just(2),
    },
)
UNLISTED = st.fixed_dictionaries(
    {"enabled": st.booleans()},
    optional={
        "display_name": st.just("Other"),
        "validation_regex": st.sampled_from([r for r in REGEXES if r]),
        "validation_message": st.just("a tag"),
        "kubespawner_override": TEMPLATES,
        "description": st.just("KubeSpawner ignores this"),
    },
)
CHOICE = st.fixed_dictionaries(
    {},
    optional={
        "display_name": st.sampled_from(["Small", "Large"]),
        "default": st.booleans(),
        "kubespawner_override": OVERRIDES,
        "slug": st.just("ignored-by-kubespawner"),
        "description": st.just("A choice"),
        "allowed_groups": st.just([GROUP]),
    },
)
OPTION = st.fixed_dictionaries(
    {"display_name": st.just("An option")},
    optional={
        "choices": st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["small", "large", "cuda-12.1", "v2"]), CHOICE, max_size=3
            ),
        ),
        "unlisted_choice": UNLISTED,
        "template_hint": st.just({"columns": 2}),
    },
).filter(lambda o: o.get("choices") or o.get("unlisted_choice", {}).get("enabled"))
PROFILE = st.fixed_dictionaries(
    {},
    optional={
        "slug": st.just(""),  # replaced by a unique slug below
        "default": st.booleans(),
        "description": st.just("A profile"),
        "kubespawner_override": OVERRIDES,
        "profile_options": st.dictionaries(
            st.sampled_from(["image", "gpu", "Image Tag"]), OPTION, max_size=2
        ),
        "allowed_groups": st.just([GROUP]),
        "x_extension": st.just({"anything": 1}),
    },
)
NAMES = ["Profile {i}", "Profile {i}: 8 CPUs, 64 GB, on a node of its own, for the heavy work"]
SLUGS = ["p{i}", "GPU_T4.{i}"]  # KubeSpawner takes any slug
PROFILE_LISTS = st.lists(
    st.tuples(PROFILE, st.sampled_from(NAMES), st.sampled_from(SLUGS)), max_size=3
).map(
    lambda profiles: [
        {
            "display_name": name.format(i=i),
            **profile,
            **({"slug": slug.format(i=i)} if "slug" in profile else {}),
        }
        for i, (profile, name, slug) in enumerate(profiles)
    ]
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every example: KubeSpawner's API clients are made once per loop.
    KubeSpawner reads a kubeconfig when built; this one points nowhere (no call is made)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kubeconfig"
        path.write_text(KUBECONFIG)
        before = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
        loop = asyncio.new_event_loop()
        yield loop
        loop.run_until_complete(_client().close())
        # KubeSpawner's shared API clients close once their tasks are cancelled
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = before


def _user() -> SimpleNamespace:
    return SimpleNamespace(
        name="alice",
        id=1,
        url="/user/alice/",
        admin=False,
        groups=[SimpleNamespace(name=g) for g in (GROUP, "research", "admins", "gpu-users")],
        settings={},
        spawners={},
    )


def combinations(profile: dict[str, Any]) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(KubeSpawner's user_options, hubflow's form) for each combination of choices: each
    option's default, each listed choice, and a valid free-text value where enabled."""
    slug = profile.get("slug") or slugify(profile["display_name"])
    per_option = []
    for name, option in profile.get("profile_options", {}).items():
        picks: list[tuple[str | None, str | None]] = [(None, None)]
        picks += [(choice, None) for choice in option.get("choices") or {}]
        unlisted = option.get("unlisted_choice", {})
        if unlisted.get("enabled"):
            picks.append(("unlisted-choice", REGEXES[unlisted.get("validation_regex")]))
        per_option.append([(name, choice, text) for choice, text in picks])
    for picks in itertools.product(*per_option):
        options, form = {"profile": slug}, {"profile": slug}
        for name, choice, text in picks:
            field = f"profile-option-{slug}--{name}"
            if text is not None:
                options[f"{name}--unlisted-choice"] = text
                form[f"{field}--unlisted-choice"] = text
            if choice is not None:
                if text is None:
                    options[name] = choice
                form[field] = choice
        yield options, form


@functools.cache
def _client() -> ApiClient:
    return ApiClient()  # only to turn models into plain JSON (its TLS set-up is slow: one)


def _manifest(pod: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = _client().sanitize_for_serialization(pod)
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    return manifest


@functools.cache
def _hubflow_base(slug: str) -> dict[str, Any]:
    """The settings a hubflow spawner holds before any override: plain KubeSpawner's start."""
    spawner = HubflowKubeSpawner(_mock=True, user=_user())
    spawner.jobs_url = "http://hub:8090/services/hubflow-jobs/"
    spawner.apply_profile(dataclasses.replace(DEFAULT, slug=slug))
    return {
        name: copy.deepcopy(getattr(spawner, name))
        for name in KubeSpawner.class_trait_names(config=True)
        if name not in ("profile_list", "options_form", "options_from_form")
    }


async def kubespawner_pod(
    profile_list: list[dict[str, Any]], options: dict[str, str], base: dict[str, Any]
) -> dict[str, Any]:
    spawner = KubeSpawner(_mock=True, user=_user())
    for name, value in base.items():
        setattr(spawner, name, copy.deepcopy(value))
    # names KubeSpawner works out once, when built, from the templates just set
    spawner.pod_name = spawner._expand_user_properties(spawner.pod_name_template)
    spawner.pvc_name = spawner._expand_user_properties(spawner.pvc_name_template)
    spawner.profile_list = copy.deepcopy(profile_list)
    spawner.user_options = options
    await spawner.load_user_options()
    return _manifest(await spawner.get_pod_manifest())


async def hubflow_pod(path: Path, form: dict[str, str]) -> dict[str, Any]:
    spawner = HubflowKubeSpawner(_mock=True, user=_user())
    spawner.profile_paths = [str(path)]
    spawner.jobs_url = "http://hub:8090/services/hubflow-jobs/"
    # load_user_options without its look at the cluster's job pods (there is no cluster here)
    spawner.resolved = spawner.admit(form)
    spawner.apply_profile(spawner.resolved)
    return _manifest(await spawner.get_pod_manifest())


def _clash(field: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    if field == "tolerations":
        return toleration_identity(a) == toleration_identity(b)
    if field == "volumeMounts":
        return a["name"] == b["name"] or a["mountPath"] == b["mountPath"]
    return bool(a["name"] == b["name"])


def assert_same_pod(mine: dict[str, Any], theirs: dict[str, Any], base: dict[str, Any]) -> None:
    """Equal, but for hubflow's own list entries (from `base`) kept ahead of an override's."""
    lists = {
        ("spec", "tolerations"): base["tolerations"],
        ("spec", "volumes"): base["volumes"],
        ("spec", "containers", 0, "volumeMounts"): base["volume_mounts"],
    }
    mine, theirs = copy.deepcopy(mine), copy.deepcopy(theirs)
    for where, added in lists.items():
        mine_list, theirs_list = _pop(mine, where), _pop(theirs, where)
        field = str(where[-1])
        kept = mine_list[: len(mine_list) - len(theirs_list)]
        assert mine_list[len(kept) :] == theirs_list, field
        for entry in kept:
            assert any(_same_entry(entry, a) for a in added), (field, entry)
            assert not any(_clash(field, entry, b) for b in theirs_list), (field, entry)
    assert mine == theirs


def _same_entry(entry: dict[str, Any], added: dict[str, Any]) -> bool:
    """Whether a pod's list entry is hubflow's `added` setting (names are expanded in pods)."""
    if "persistentVolumeClaim" in added:
        return entry.get("name") == added["name"] and "persistentVolumeClaim" in entry
    return all(entry.get(key) == value for key, value in added.items() if key != "readOnly")


def _pop(manifest: dict[str, Any], where: tuple[Any, ...]) -> list[Any]:
    node: Any = manifest
    for part in where[:-1]:
        node = node[part]
    return list(node.pop(where[-1], None) or [])


async def check_list(profile_list: list[dict[str, Any]], folder: Path) -> int:
    """Compare every combination's pods; the number of pods compared."""
    path = folder / "profiles.yaml"
    path.write_text(yaml.safe_dump(profile_list, sort_keys=False))
    load_profiles(path)  # any list KubeSpawner takes, hubflow loads
    combos = [pair for profile in profile_list for pair in combinations(profile)]
    combos.append(({}, {}))  # no profile named: the (first) default one
    compared = 0
    for options, form in combos:
        slug = str(form.get("profile") or _default_slug(profile_list))
        base = _hubflow_base(slug)
        try:
            theirs = await kubespawner_pod(profile_list, options, base)
        except (ValueError, StopIteration) as refused:
            # KubeSpawner cannot build this one (no default for a free-text-only option)
            with pytest.raises(web.HTTPError):
                await hubflow_pod(path, form)
            assert "Unable to determine a default choice" in str(refused)
            continue
        mine = await hubflow_pod(path, form)
        kubernetes_validate.validate(mine, K8S_VERSION, strict=True)
        assert_same_pod(mine, theirs, base)
        compared += 1
    return compared


def _default_slug(profile_list: list[dict[str, Any]]) -> str:
    if not profile_list:
        return DEFAULT.slug
    profile = next((p for p in profile_list if p.get("default")), profile_list[0])
    return str(profile.get("slug") or slugify(profile["display_name"]))


@settings(
    max_examples=int(os.environ.get("HUBFLOW_Z2JH_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(profile_list=PROFILE_LISTS)
def test_every_combination_builds_the_pod_kubespawner_builds(
    loop: asyncio.AbstractEventLoop, profile_list: list[dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        loop.run_until_complete(check_list(profile_list, Path(folder)))


def test_an_empty_list_starts_kubespawners_default_pod(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    assert loop.run_until_complete(check_list([], tmp_path)) == 1
    # and, as KubeSpawner with no profile, no spawn page: JupyterHub starts the server at once

    async def form() -> str:
        spawner = HubflowKubeSpawner(_mock=True, user=_user())
        spawner.profile_paths = [str(tmp_path / "profiles.yaml")]
        return str(await spawner.get_options_form())

    assert loop.run_until_complete(form()) == ""


REGRESSIONS = [
    {
        "display_name": "RStudio",
        "kubespawner_override": {"image": "rocker/binder:4.4", "default_url": "/lab"},
        "profile_options": {
            "ui": {
                "display_name": "Interface",
                "choices": {
                    "rstudio": {"kubespawner_override": {"default_url": "/rstudio"}},
                    "desktop": {"kubespawner_override": {"default_url": "/desktop"}},
                },
            }
        },
    },
    {
        "display_name": "GPU by choice",
        "kubespawner_override": {
            "image": "quay.io/jupyter/pytorch-notebook:cuda12",
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "profile_options": {
            "gpu": {
                "display_name": "GPU",
                "choices": {
                    "none": {"display_name": "None", "default": True},
                    "one": {
                        "kubespawner_override": {
                            "extra_resource_limits": {"nvidia.com/gpu": "1"},
                            "tolerations": [
                                {"key": "nvidia.com/gpu", "operator": "Exists"},
                            ],
                        }
                    },
                },
            }
        },
    },
]


@pytest.mark.parametrize(
    ("form", "check"),
    [
        ({"profile": "rstudio", "profile-option-rstudio--ui": "rstudio"}, "url:/rstudio"),
        ({"profile": "rstudio", "profile-option-rstudio--ui": "desktop"}, "url:/desktop"),
        ({"profile": "gpu-by-choice", "profile-option-gpu-by-choice--gpu": "one"}, "gpu"),
        ({"profile": "gpu-by-choice"}, "no gpu"),
    ],
)
def test_a_choices_url_gpu_and_tolerations_reach_the_pod_once(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, form: dict[str, str], check: str
) -> None:
    # each combination (3 a profile) and the default profile: as KubeSpawner builds them
    assert loop.run_until_complete(check_list(REGRESSIONS, tmp_path)) == 7
    pod = loop.run_until_complete(hubflow_pod(tmp_path / "profiles.yaml", form))
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    limits = container["resources"].get("limits", {})
    keys = [t["key"] for t in pod["spec"].get("tolerations", [])]
    if check.startswith("url:"):
        assert env["JUPYTERHUB_DEFAULT_URL"] == check[4:]
    elif check == "gpu":
        assert limits == {"nvidia.com/gpu": "1"} and "null" not in str(container["resources"])
        assert keys == ["nvidia.com/gpu"]  # the choice's list replaced the profile's, once
    else:
        assert "nvidia.com/gpu" not in limits and keys == ["dedicated"]


DEPLOYMENTS = Path(__file__).parents[1] / "profiles" / "fixtures" / "profiles"


def test_lists_as_deployments_write_them_build_kubespawners_pods(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    profile_list = yaml.safe_load((DEPLOYMENTS / "z2jh_deployments.yaml").read_text())
    # (default, 2 images, a free-text one) x (default, 2 sizes); (default, 2 images); 1; 1; and
    # no profile named: every pod as KubeSpawner builds it
    assert loop.run_until_complete(check_list(profile_list, tmp_path)) == 4 * 3 + 3 + 1 + 1 + 1
