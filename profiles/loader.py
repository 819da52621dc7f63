"""Reading profile files: YAML, the three z2jh shapes, defaults, quotas, cross-file checks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from slugify import slugify

from .build import build_profile
from .catalog import ProfileCatalog
from .errors import Path, Problem, ProfileError
from .merge import merge_defaults
from .model import Profile
from .quantities import MAX_NUMBER_CHARS
from .quotas import check_quotas
from .schema import check
from .z2jh import HUBFLOW_FIELDS, Z2JH_KEYS, is_z2jh, original_path, review_file, to_native

PathLike = str | os.PathLike[str]


class _Loader(yaml.SafeLoader):
    """Safe YAML loading that refuses a key given twice in one mapping."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@dataclass(frozen=True)
class _File:
    path: str
    profiles: list[Profile]
    quotas: Mapping[str, Mapping[str, int]]


def profile_files(paths: PathLike | Iterable[PathLike]) -> list[str]:
    """The files named, and the *.yaml/*.yml files of the directories named, sorted."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files = []
    for path in (os.fspath(p) for p in paths):
        if os.path.isdir(path):
            names = [n for n in os.listdir(path) if n.endswith((".yaml", ".yml"))]
            files += [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ProfileError(path, "no such file or directory")
    return sorted(dict.fromkeys(files))


def load_profiles(paths: PathLike | Iterable[PathLike]) -> ProfileCatalog:
    """Load and check profile files (or directories of them) into a ProfileCatalog."""
    return _catalog([_load_file(path) for path in profile_files(paths)])


#: The largest profile file read (a profile list of hundreds of profiles is a few hundred KiB).
MAX_FILE_BYTES = 2**20
#: The most values a file may hold once its YAML aliases are expanded: an alias is fine, a
#: "billion laughs" of nested aliases is refused before anything walks it.
MAX_EXPANDED_NODES = 100_000
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


def _read(path: str) -> Any:
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ProfileError(path, f"larger than {MAX_FILE_BYTES // 2**20} MiB")
        loader = _Loader(raw.decode("utf-8"))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_size(path, node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except OSError as error:
        raise ProfileError(path, f"cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ProfileError(path, "not UTF-8 text") from None
    except RecursionError:
        raise ProfileError(path, "nested too deeply") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}" if mark else None
        raise ProfileError(path, f"YAML syntax error: {error.problem}", where) from None
    except yaml.YAMLError as error:
        raise ProfileError(path, f"YAML syntax error: {error}") from None


def _check_size(path: str, root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than MAX_EXPANDED_NODES values, an alias
    inside itself, or a number too long to parse quickly, before the document is constructed."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ProfileError(
                path, "a YAML alias refers to itself", f"line {node.start_mark.line + 1}"
            )
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
                raise ProfileError(
                    path,
                    f"a number of {len(node.value)} characters (at most {MAX_NUMBER_CHARS})",
                    f"line {node.start_mark.line + 1}",
                )
            total = 1
        else:
            open_nodes.add(key)
            children = (
                node.value
                if isinstance(node, yaml.SequenceNode)
                else (child for pair in node.value for child in pair)
            )
            total = 1
            for child in children:
                total += size(child)
                if total > MAX_EXPANDED_NODES:
                    raise ProfileError(
                        path,
                        f"more than {MAX_EXPANDED_NODES} values once its YAML aliases are "
                        "expanded: write the profiles out, without nested aliases",
                        f"line {node.start_mark.line + 1}",
                    )
            open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


def _list_at(path: str, data: Any, keys: Path) -> list[Any]:
    node = data
    for depth, key in enumerate(keys):
        if not isinstance(node, Mapping):
            raise ProfileError(path, "must be a mapping", path=keys[:depth])
        if key not in node:
            raise ProfileError(path, f"missing required field '{key}'", path=keys[:depth])
        node = node[key]
    if not isinstance(node, list):
        raise ProfileError(path, "must be a list", path=keys)
    return node


def _load_file(path: str) -> _File:
    data = _read(path)
    defaults: Mapping[str, Any] = {}
    quotas: Mapping[str, Mapping[str, int]] = {}
    z2jh_only = True
    if isinstance(data, list):
        entries = data
    elif isinstance(data, Mapping) and "singleuser" in data:
        # z2jh chart values: only singleuser.profileList is ours, the rest is the chart's
        entries = _list_at(path, data, ("singleuser", "profileList"))
    elif isinstance(data, Mapping) and "profileList" in data:
        entries = _list_at(path, data, ("profileList",))
        for key in data:
            if key != "profileList":
                raise ProfileError(path, f"unknown field '{key}'", path=(key,))
    elif isinstance(data, Mapping):
        profiles = data.get("profiles", [])
        try:
            check({**data, "profiles": []} if isinstance(profiles, list) else data, "nativeFile")
        except Problem as problem:
            raise ProfileError(path, problem.message, path=problem.path) from None
        try:
            check_quotas(data.get("quotas", {}))
        except Problem as problem:
            raise ProfileError(path, problem.message, path=("quotas", *problem.path)) from None
        entries, defaults, quotas, z2jh_only = (
            profiles,
            data.get("defaults", {}),
            data.get("quotas", {}),
            False,
        )
    else:
        raise ProfileError(
            path, "the file is empty" if data is None else "must be a mapping or a list"
        )
    profiles = [_load_entry(path, i, entry, defaults, z2jh_only) for i, entry in enumerate(entries)]
    return _File(path, review_file(path, entries, profiles), quotas)


def _label(entry: Any, index: int) -> str:
    if isinstance(entry, Mapping):
        slug = entry.get("slug")
        name = entry.get("display_name")
        if not isinstance(slug, str) and isinstance(name, str):
            slug = slugify(name)
        if isinstance(slug, str) and slug:
            return f"profile '{slug}'"
    return f"profile #{index + 1}"


def _load_entry(
    path: str, index: int, entry: Any, defaults: Mapping[str, Any], z2jh_only: bool
) -> Profile:
    where = _label(entry, index)
    z2jh = z2jh_only or (isinstance(entry, Mapping) and is_z2jh(entry))
    try:
        if not isinstance(entry, Mapping):
            raise Problem((), "must be a mapping")
        if z2jh and not z2jh_only:
            _refuse_mixing(entry)
        check(entry, "z2jhProfile" if z2jh else "profile")
        raw = to_native(entry) if z2jh else entry
    except Problem as problem:
        raise ProfileError(path, problem.message, where, problem.path) from None
    try:
        return build_profile(merge_defaults(defaults, raw), path)
    except Problem as problem:
        field = original_path(problem.path) if z2jh else problem.path
        raise ProfileError(path, problem.message, where, field) from None


def _refuse_mixing(entry: Mapping[str, Any]) -> None:
    z2jh_key = next(key for key in Z2JH_KEYS if key in entry)
    for key in entry:
        if key in HUBFLOW_FIELDS:
            raise Problem(
                (key,),
                f"a hubflow field cannot be mixed with z2jh's '{z2jh_key}' in one profile; "
                f"write this profile in one format",
            )


def _catalog(files: list[_File]) -> ProfileCatalog:
    """Checks across files: unique slugs, one default profile, one quota entry per group."""
    by_slug: dict[str, Profile] = {}
    default: Profile | None = None
    quotas: dict[str, Mapping[str, int]] = {}
    quota_sources: dict[str, str] = {}
    for file in files:
        for group, quota in file.quotas.items():
            if group in quotas:
                raise ProfileError(
                    file.path, f"already defined in {quota_sources[group]}", path=("quotas", group)
                )
            quotas[group], quota_sources[group] = quota, file.path
        for profile in file.profiles:
            where = f"profile '{profile.slug}'"
            if profile.slug in by_slug:
                other = by_slug[profile.slug].source
                raise ProfileError(
                    file.path, f"duplicate slug, already used in {other}", where, ("slug",)
                )
            by_slug[profile.slug] = profile
            if profile.default and default:
                raise ProfileError(
                    file.path,
                    f"only one profile may be the default; '{default.slug}' ({default.source}) is",
                    where,
                    ("default",),
                )
            default = default or (profile if profile.default else None)
    return ProfileCatalog(tuple(by_slug.values()), quotas, quota_sources)
