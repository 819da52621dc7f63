"""Every kind of bad profile file is refused with file, profile and field path in plain words."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hubflow.profiles import ProfileError, load_profiles

P = "profiles:\n  - slug: p\n    display_name: P\n    ides: {jupyterlab: {}}\n"


def profile(extra: str) -> str:
    """A file with one valid profile 'p' plus the given (indented) fields."""
    return P + textwrap.indent(textwrap.dedent(extra), "    ")


def load_error(tmp_path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profiles(tmp_path)
    return str(caught.value).replace(f"{tmp_path}/", "")


CASES = {
    "gpu count below one": (
        "profiles:\n  - slug: a100-x2\n    display_name: A100 x2\n    ides: {jupyterlab: {}}\n"
        "    gpu: {type: A100, count: 0}\n",
        "gpu.yaml: profile 'a100-x2' > gpu.count: must be an integer ≥ 1",
    ),
    "gpu count not whole": (
        profile("gpu: {count: 1.5}"),
        "gpu.yaml: profile 'p' > gpu.count: must be an integer ≥ 1 or a list of integers ≥ 1 "
        "or a range {min, max, step, default}",
    ),
    "gpu count list item": (
        profile("gpu: {count: [1, 0]}"),
        "gpu.yaml: profile 'p' > gpu.count[1]: must be an integer ≥ 1",
    ),
    "unknown field deep": (
        profile("gpu: {count: 1, model: A100}"),
        "gpu.yaml: profile 'p' > gpu.model: unknown field 'model'",
    ),
    "unknown profile field": (
        profile("cpus: 2"),
        "gpu.yaml: profile 'p' > cpus: unknown field 'cpus'",
    ),
    "unknown file field": ("profile: []\n", "gpu.yaml: profile: unknown field 'profile'"),
    "unknown ide": (
        profile("ides: {emacs: {}}").replace("    ides: {jupyterlab: {}}\n", ""),
        "gpu.yaml: profile 'p' > ides.emacs: unknown field 'emacs'",
    ),
    "type": (
        profile("cpu: {guarantee: lots}"),
        "gpu.yaml: profile 'p' > cpu.guarantee: must be a number ≥ 0",
    ),
    "number or range": (
        profile("cpu: {limit: lots}"),
        "gpu.yaml: profile 'p' > cpu.limit: must be a number > 0 or a range {min, max, step, default}",
    ),
    "range field": (
        profile("cpu: {limit: {min: 1, max: eight, step: 1}}"),
        "gpu.yaml: profile 'p' > cpu.limit.max: must be a number > 0",
    ),
    "enum": (
        profile("gpu: {vendor: intel}"),
        "gpu.yaml: profile 'p' > gpu.vendor: must be one of: nvidia, amd (got 'intel')",
    ),
    "slug pattern": (
        P.replace("slug: p", "slug: A100"),
        "gpu.yaml: profile 'A100' > slug: must be a slug (lowercase letters, digits and '-', "
        "starting and ending with a letter or digit) (got 'A100')",
    ),
    "quantity pattern": (
        profile("memory: {limit: 2GB}"),
        "gpu.yaml: profile 'p' > memory.limit: must be a quantity such as 512Mi or 8G (got '2GB')",
    ),
    "environment value": (
        profile("environment: {OMP_NUM_THREADS: 4}"),
        "gpu.yaml: profile 'p' > environment.OMP_NUM_THREADS: must be a string",
    ),
    "missing display name": (
        "profiles:\n  - {slug: p, ides: {jupyterlab: {}}}\n",
        "gpu.yaml: profile 'p': missing required field 'display_name'",
    ),
    "missing ides": (
        "profiles:\n  - {slug: p, display_name: P}\n",
        "gpu.yaml: profile 'p': missing required field 'ides'",
    ),
    "missing choice name": (
        profile("options: {flavour: {display_name: F, choices: {x: {default: true}}}}"),
        "gpu.yaml: profile 'p' > options.flavour.choices.x: missing required field 'display_name'",
    ),
    "profile not a mapping": ("profiles: [small]\n", "gpu.yaml: profile #1: must be a mapping"),
    "option name": (
        profile("options: {a--b: {display_name: A, choices: {x: {display_name: X}}}}"),
        "gpu.yaml: profile 'p' > options.a--b: invalid name 'a--b' (allowed: letters, digits, "
        "'_' and single '-' (no '--'))",
    ),
    "yaml boolean as a name": (
        profile("options: {o: {display_name: O, choices: {on: {display_name: On}}}}"),
        "gpu.yaml: profile 'p' > options.o.choices.True: invalid name 'True' (allowed: letters, "
        "digits, '_', '.' and single '-'; not 'unlisted-choice'; YAML reads yes/no/on/off as "
        "true/false, quote the name)",
    ),
    "reserved option": (
        profile("options: {gpu: {display_name: G, choices: {x: {display_name: X}}}}"),
        "gpu.yaml: profile 'p' > options.gpu: option name 'gpu' is reserved (ide, cpu, memory, gpu)",
    ),
    "two default choices": (
        profile(
            "options: {f: {display_name: F, choices: "
            "{a: {display_name: A, default: true}, b: {display_name: B, default: true}}}}"
        ),
        "gpu.yaml: profile 'p' > options.f.choices.b.default: only one choice may be the default, "
        "'a' is",
    ),
    "reserved choice": (
        profile("options: {f: {display_name: F, choices: {unlisted-choice: {display_name: U}}}}"),
        "gpu.yaml: profile 'p' > options.f.choices.unlisted-choice: 'unlisted-choice' is reserved "
        "for the free-text choice",
    ),
    "option without choices": (
        profile("options: {f: {display_name: F, unlisted_choice: {enabled: false}}}"),
        "gpu.yaml: profile 'p' > options.f: needs at least one choice or an enabled unlisted_choice",
    ),
    "guarantee above limit": (
        profile("cpu: {guarantee: 4, limit: 2}"),
        "gpu.yaml: profile 'p' > cpu.guarantee: 4 is above the limit 2",
    ),
    "guarantee above lowest of range": (
        profile("memory: {guarantee: 8Gi, limit: {min: 4Gi, max: 16Gi, step: 4Gi}}"),
        "gpu.yaml: profile 'p' > memory.guarantee: 8 GiB is above the limit 4 GiB",
    ),
    "choice guarantee above limit": (
        profile(
            "cpu: {limit: 2}\n"
            "options: {size: {display_name: S, choices: {big: {display_name: B, set: {cpu: {guarantee: 3}}}}}}"
        ),
        "gpu.yaml: profile 'p' > options.size.choices.big.set.cpu: 3 is above the limit 2",
    ),
    "range min above max": (
        profile("cpu: {limit: {min: 8, max: 2, step: 2}}"),
        "gpu.yaml: profile 'p' > cpu.limit.max: must not be below min (8)",
    ),
    "range default outside": (
        profile("cpu: {limit: {min: 2, max: 8, step: 2, default: 10}}"),
        "gpu.yaml: profile 'p' > cpu.limit.default: must be between min (2) and max (8)",
    ),
    "range off the step grid": (
        profile("memory: {limit: {min: 4Gi, max: 10Gi, step: 4Gi}}"),
        "gpu.yaml: profile 'p' > memory.limit.max: 10 GiB is not a multiple of the step 4 GiB",
    ),
    "range min off the step grid": (
        profile("cpu: {limit: {min: 1, max: 8, step: 2}}"),
        "gpu.yaml: profile 'p' > cpu.limit.min: 1 is not a multiple of the step 2",
    ),
    "gpu default off the step grid": (
        profile("gpu: {count: {min: 2, max: 8, step: 2, default: 3}}"),
        "gpu.yaml: profile 'p' > gpu.count.default: 3 is not a multiple of the step 2",
    ),
    "toleration field": (
        profile("tolerations: [{key: nvidia.com/gpu, efect: NoSchedule}]"),
        "gpu.yaml: profile 'p' > tolerations[0].efect: unknown field 'efect'",
    ),
    "toleration exists with value": (
        profile("tolerations: [{key: gpu, operator: Exists, value: x}]"),
        "gpu.yaml: profile 'p' > tolerations[0].value: must not be set with operator Exists",
    ),
    "volume source": (
        profile("volumes: {extra: [{name: d, mount_path: /d, claim: c, host_path: /d}]}"),
        "gpu.yaml: profile 'p' > volumes.extra[0]: set exactly one of 'claim' (an existing PVC), "
        "'host_path' (a node directory) or 'size' (a volume made for each user)",
    ),
    "storage class of a shared volume": (
        profile("volumes: {extra: [{name: d, mount_path: /d, claim: c, storage_class: fast}]}"),
        "gpu.yaml: profile 'p' > volumes.extra[0].storage_class: only a volume with a 'size' has one",
    ),
    "per-user volume size": (
        profile("volumes: {extra: [{name: d, mount_path: /d, size: lots}]}"),
        "gpu.yaml: profile 'p' > volumes.extra[0].size: must be a quantity such as 512Mi or 8G (got 'lots')",
    ),
    "defaults": (
        "defaults: {cpu: {guarantee: -1}}\n" + P,
        "gpu.yaml: defaults.cpu.guarantee: must be a number ≥ 0",
    ),
    "defaults make a profile bad": (
        "defaults: {cpu: {guarantee: 4}}\n" + profile("cpu: {limit: 2}"),
        "gpu.yaml: profile 'p' > cpu.guarantee: 4 is above the limit 2",
    ),
    "quota value": (
        "quotas: {students: {servers: -1}}\n",
        "gpu.yaml: quotas.students.servers: must be an integer ≥ 0",
    ),
    "quota field": (
        "quotas: {students: {cpus: 1}}\n",
        "gpu.yaml: quotas.students.cpus: unknown field 'cpus'",
    ),
    "quota group totals in default": (
        "quotas: {default: {group_gpus: 4}}\n",
        "gpu.yaml: quotas.default.group_gpus: group totals need a named group, not 'default'",
    ),
    "empty file": ("", "gpu.yaml: the file is empty"),
    "not a mapping": ("42\n", "gpu.yaml: must be a mapping or a list"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_file_gets_the_exact_message(tmp_path: Path, case: str) -> None:
    text, message = CASES[case]
    assert load_error(tmp_path, {"gpu.yaml": text}) == message


def test_the_error_is_a_value_error_with_its_parts(tmp_path: Path) -> None:
    (tmp_path / "gpu.yaml").write_text(CASES["gpu count below one"][0])
    with pytest.raises(ValueError) as caught:
        load_profiles(tmp_path / "gpu.yaml")
    error = caught.value
    assert isinstance(error, ProfileError)
    assert (error.where, error.path, error.message) == (
        "profile 'a100-x2'",
        "gpu.count",
        "must be an integer ≥ 1",
    )


def test_the_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    text = profile("cpu: {guarantee: x}\nmemory: {limit: y}\ngpu: {count: 0}")
    assert load_error(tmp_path, {"gpu.yaml": text}).endswith("cpu.guarantee: must be a number ≥ 0")


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, {"gpu.yaml": "profiles:\n  - slug: p\n    display_name: [oops\n"}
    )
    assert message.startswith("gpu.yaml: line 4: YAML syntax error: ")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "profiles:\n  - slug: p\n    display_name: P\n    slug: q\n"
    assert load_error(tmp_path, {"gpu.yaml": text}) == (
        "gpu.yaml: line 4: YAML syntax error: duplicate key 'slug'"
    )


def test_regexes_must_compile(tmp_path: Path) -> None:
    text = profile(
        "options: {tag: {display_name: T, unlisted_choice: {enabled: true, validation_regex: '([a-z'}}}"
    )
    assert load_error(tmp_path, {"gpu.yaml": text}).startswith(
        "gpu.yaml: profile 'p' > options.tag.unlisted_choice.validation_regex: "
        "not a valid regular expression: "
    )


def test_duplicate_slugs_across_files_name_both_files(tmp_path: Path) -> None:
    files = {"a.yaml": P, "b.yaml": P.replace("display_name: P", "display_name: Other")}
    assert load_error(tmp_path, files) == (
        "b.yaml: profile 'p' > slug: duplicate slug, already used in a.yaml"
    )


def test_derived_slugs_count_as_duplicates_too(tmp_path: Path) -> None:
    text = "profiles:\n  - {display_name: Big GPU, ides: {vscode: {}}}\n  - {slug: big-gpu, display_name: X, ides: {vscode: {}}}\n"
    assert load_error(tmp_path, {"a.yaml": text}) == (
        "a.yaml: profile 'big-gpu' > slug: duplicate slug, already used in a.yaml"
    )


def test_at_most_one_default_profile_over_all_files(tmp_path: Path) -> None:
    files = {
        "a.yaml": P.replace("display_name: P", "display_name: P\n    default: true"),
        "b.yaml": P.replace("slug: p", "slug: q").replace(
            "display_name: P", "display_name: Q\n    default: true"
        ),
    }
    assert load_error(tmp_path, files) == (
        "b.yaml: profile 'q' > default: only one profile may be the default; 'p' (a.yaml) is"
    )


def test_a_group_quota_is_defined_once_over_all_files(tmp_path: Path) -> None:
    files = {
        "a.yaml": "quotas: {students: {servers: 1}}\n",
        "b.yaml": "quotas: {students: {gpus: 0}}\n",
    }
    assert load_error(tmp_path, files) == "b.yaml: quotas.students: already defined in a.yaml"


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nowhere\.yaml: no such file or directory$"):
        load_profiles(tmp_path / "nowhere.yaml")
