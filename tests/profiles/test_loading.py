"""Loading good profile files: the shipped set, native files, directories, defaults and the schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from hubflow.profiles import ProfileCatalog, load_profiles
from hubflow.profiles.quantities import parse_quantity

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_the_shipped_default_yaml_loads_with_the_promised_profiles_and_quotas() -> None:
    catalog = load_profiles(PROFILES / "default.yaml")
    slugs = [p.slug for p in catalog.profiles]
    assert slugs == ["small-cpu", "large-cpu", "gpu-1", "multi-gpu"]
    small = catalog.get("small-cpu")
    assert small is not None and small.default
    assert (small.cpu.guarantee, small.cpu.limit and small.cpu.limit.default) == (0.5, 1.0)
    assert small.memory.limit is not None and small.memory.limit.default == 2 * 10**9
    large = catalog.get("large-cpu")
    assert large is not None and large.cpu.limit is not None and not large.cpu.limit.is_fixed
    assert large.memory.limit is not None and not large.memory.limit.is_fixed
    for profile in catalog.profiles:
        assert [ide.name for ide in profile.ides] == ["jupyterlab", "vscode", "rstudio"]
        assert "image-version" in [o.name for o in profile.options]
        cuda = profile.gpu is not None
        assert all(("-cuda:" in (ide.image or "")) == cuda for ide in profile.ides)
    multi = catalog.get("multi-gpu")
    assert multi is not None and multi.groups == ("gpu-users",)
    assert multi.gpu is not None and multi.gpu.count.values == (2, 4)
    assert catalog.quotas["default"] == {"servers": 1, "gpus": 0, "jobs": 2, "job_workers": 4}
    assert catalog.quotas["gpu-users"] == {
        "servers": 2,
        "gpus": 4,
        "jobs": 4,
        "job_workers": 8,
        "job_gpus": 8,
        "group_gpus": 8,
    }


def test_shipped_image_variant_option_has_a_regex_checked_unlisted_choice() -> None:
    profile = load_profiles(PROFILES / "default.yaml").get("small-cpu")
    assert profile is not None
    option = next(o for o in profile.options if o.name == "image-version")
    assert option.unlisted is not None and option.unlisted.validation_regex


def test_a_native_file_loads_every_field_into_the_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "team.yaml",
        """\
        profiles:
          - slug: a100-x2
            display_name: A100 x2
            description: Two GPUs
            ides:
              jupyterlab: {image: "hubflow/jupyterlab-cuda:latest"}
              vscode: {}
            cpu: {guarantee: 2, limit: {min: 2, max: 16, step: 2, default: 8}}
            memory: {guarantee: 8Gi, limit: {min: 8Gi, max: 64Gi, step: 8Gi}}
            gpu: {type: MI250, vendor: amd, count: {min: 1, max: 2}, shared: true}
            environment: {HF_HOME: /data/hf}
            volumes:
              workspace: {size: 50Gi, storage_class: fast, mount_path: /home/jovyan/work}
              extra:
                - {name: datasets, mount_path: /data, read_only: true, claim: team-datasets}
                - {name: scratch, mount_path: /scratch, host_path: /mnt/scratch}
            node_selector: {gpu: mi250}
            tolerations: [{key: amd.com/gpu, operator: Exists, effect: NoSchedule}]
            groups: [ml-team]
        """,
    )
    profile = load_profiles(path).profiles[0]
    assert profile.source == path
    assert [(i.name, i.image) for i in profile.ides] == [
        ("jupyterlab", "hubflow/jupyterlab-cuda:latest"),
        ("vscode", None),
    ]
    assert profile.cpu.limit is not None
    assert (profile.cpu.limit.minimum, profile.cpu.limit.maximum, profile.cpu.limit.default) == (
        2,
        16,
        8,
    )
    assert profile.memory.guarantee == 8 * 2**30
    assert profile.memory.limit is not None and profile.memory.limit.default == 8 * 2**30
    assert profile.gpu is not None
    assert (profile.gpu.resource, profile.gpu.count.step, profile.gpu.shared) == (
        "amd.com/gpu",
        1,
        True,
    )
    assert profile.workspace is not None and profile.workspace.storage_class == "fast"
    assert [(v.name, v.claim, v.host_path) for v in profile.extra_volumes] == [
        ("datasets", "team-datasets", None),
        ("scratch", None, "/mnt/scratch"),
    ]
    assert profile.groups == ("ml-team",)


def test_gpu_vendor_defaults_to_nvidia(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "g.yaml",
        """\
        profiles:
          - {slug: g, display_name: G, ides: {jupyterlab: {}}, gpu: {count: 1}}
        """,
    )
    gpu = load_profiles(path).profiles[0].gpu
    assert gpu is not None and gpu.resource == "nvidia.com/gpu"


def test_a_missing_slug_is_derived_from_display_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """\
        profiles:
          - {display_name: "GPU: A100 (large)!", ides: {jupyterlab: {}}}
        """,
    )
    assert load_profiles(path).profiles[0].slug == "gpu-a100-large"


def test_directories_are_read_in_sorted_order_and_only_yaml_files(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "profiles: [{slug: b, display_name: B, ides: {vscode: {}}}]\n")
    write(tmp_path, "a.yaml", "profiles: [{slug: a, display_name: A, ides: {vscode: {}}}]\n")
    write(tmp_path, "notes.txt", "not yaml: [\n")
    write(tmp_path, "quotas.yaml", "quotas: {default: {servers: 1}}\n")
    catalog = load_profiles([tmp_path])
    assert [p.slug for p in catalog.profiles] == ["a", "b"]
    assert catalog.quotas == {"default": {"servers": 1}}
    assert catalog.quota_sources == {"default": str(tmp_path / "quotas.yaml")}


def test_defaults_apply_to_every_profile_of_their_file_only(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "1.yaml",
        """\
        defaults:
          ides: {jupyterlab: {image: base:1}}
          cpu: {guarantee: 0.5}
          environment: {A: from-defaults, B: from-defaults}
        profiles:
          - {slug: one, display_name: One, cpu: {limit: 2}, environment: {B: mine}}
          - {slug: two, display_name: Two, ides: {rstudio: {}}}
        """,
    )
    second = write(
        tmp_path, "2.yaml", "profiles: [{slug: three, display_name: T, ides: {vscode: {}}}]\n"
    )
    catalog = load_profiles([first, second])
    one, two, three = catalog.profiles
    assert (one.cpu.guarantee, one.cpu.limit and one.cpu.limit.default) == (0.5, 2.0)
    assert one.environment == {"A": "from-defaults", "B": "mine"}
    assert [i.name for i in one.ides] == ["jupyterlab"]
    assert [i.name for i in two.ides] == ["rstudio"]  # ides are replaced, not merged
    assert three.cpu.guarantee is None and three.environment == {}


def test_a_file_of_quotas_only_and_an_empty_profile_list_load(tmp_path: Path) -> None:
    path = write(tmp_path, "q.yaml", "quotas: {students: {servers: 2}}\nprofiles: []\n")
    catalog = load_profiles(path)
    assert isinstance(catalog, ProfileCatalog) and catalog.profiles == ()
    assert catalog.quotas == {"students": {"servers": 2}}


@pytest.mark.parametrize(
    ("text", "size"),
    [("512Mi", 512 * 2**20), ("2G", 2 * 10**9), ("1.5Gi", 3 * 2**29), ("100", 100), ("1k", 1000)],
)
def test_quantities_are_normalised_to_bytes(text: str, size: int) -> None:
    assert parse_quantity(text) == size


def test_the_schema_is_valid_draft_2020_12_and_documents_every_property() -> None:
    schema = json.loads((PROFILES / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                # z2jh chart values carry the chart's own settings, and KubeSpawner ignores
                # keys it does not read in a profileList: the only open mappings
                z2jh = ("z2jhValuesFile", "z2jhProfile", "z2jhOption", "z2jhChoice", "z2jhUnlisted")
                if not where.startswith(tuple(f"$defs.{name}" for name in z2jh)):
                    assert node.get("additionalProperties") is False, where
                for name, prop in node["properties"].items():
                    assert prop.get("description"), f"{where}.{name} has no description"
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "")


def test_the_schema_accepts_the_shipped_file_as_editors_would_use_it() -> None:
    schema = json.loads((PROFILES / "schema.json").read_text())
    data = yaml.safe_load((PROFILES / "default.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(
            {"profiles": [{"display_name": "x", "cpus": 1}]}
        )


def test_the_complete_example_of_the_admin_guide_loads(tmp_path: Path) -> None:
    guide = (PROFILES.parent / "docs" / "profiles.md").read_text()
    example = guide.split("```yaml\n# /etc/hubflow/profiles/team.yaml\n", 1)[1].split("```", 1)[0]
    catalog = load_profiles(write(tmp_path, "team.yaml", example))
    assert [p.slug for p in catalog.profiles] == ["small-cpu", "large-cpu", "a100-x2"]
    gpu = catalog.get("a100-x2")
    assert gpu is not None and [t["key"] for t in gpu.tolerations] == [
        "hub.example.org/dedicated",
        "nvidia.com/gpu",
    ]
