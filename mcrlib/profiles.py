"""Profiles: one base config and small overrides of it, merged when a stage loads its params.

`params.yaml` is the base: the quick profile, the one `dvc repro` runs. Every other profile is a
file `profiles/<name>.yaml` that holds only what differs from the base, merged over it by `merge`:

- a mapping merges into the base's mapping of the same key, key by key (new keys come after the
  base's, in the override's order);
- a list or a scalar replaces the base's value;
- `null` deletes the key (e.g. `AV-Digits: null` under `benchmarks.datasets`: the paper profile
  keeps its own dataset list, the smoke profile has no AV-Digits);
- a mapping tagged `!replace` replaces the base's mapping whole instead of merging into it (the
  smoke profile's tiny `model: !replace {hidden_dim: 32, latent_dim: 16}` keeps none of the base's
  keys; also where the order of the keys matters, e.g. a list of datasets).

A profile may also hold a top-level `reads` mapping: stage -> {section: override}, how one stage
reads another stage's section where it differs from that section (merged the same way; `null`:
the stage reads no such section). The smoke profile uses it so that each notebook's smoke run
stays as small as before (Figure 6 follows the synthetic data only).

`load_stage` is what every notebook calls: the sections a stage reads under a profile, with each
`calibrated: true` entry filled from the calibration's choice (results/<profile>/calibrate/
chosen.json, written by the calibrate stage). The calibration is applied here, where a stage
starts, and nowhere else: no study reads chosen.json.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

BASE_PROFILE = "quick"            # params.yaml
BASE_FILE = "params.yaml"
PROFILES_DIR = "profiles"
READS = "reads"                   # a profile's per-stage views of other sections
CALIBRATE_STAGE = "calibrate"
CHOSEN_FILE = "chosen.json"       # what the calibrate stage chose, in its results folder


class Replace(dict):
    """A mapping tagged `!replace` in a profile: it replaces the base's mapping whole."""


class ProfileLoader(yaml.SafeLoader):
    """YAML's safe loader with the `!replace` tag."""


ProfileLoader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))


def merge(base, override):
    """`base` with `override` merged over it (the rules in the module docstring). Neither argument
    is changed; the result holds plain dicts only (no `Replace` marks) and shares nothing with them."""
    if isinstance(override, Replace) or not isinstance(override, dict) or not isinstance(base, dict):
        return _plain(override)
    merged = {}
    for key, value in base.items():
        if key not in override:
            merged[key] = _plain(value)
        elif override[key] is not None:
            merged[key] = merge(value, override[key])
    for key, value in override.items():
        if key not in base and value is not None:
            merged[key] = _plain(value)
    return merged


def _plain(value):
    """A deep copy of `value` with every `Replace` turned into a plain dict."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def profile_names(root: str | Path = ".") -> list[str]:
    """The base profile, then every file of profiles/, by name."""
    return [BASE_PROFILE, *sorted(p.stem for p in (Path(root) / PROFILES_DIR).glob("*.yaml"))]


def read_yaml(path: Path) -> dict:
    params = yaml.load(path.read_text(), Loader=ProfileLoader) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def load_profile(profile: str, root: str | Path = ".") -> dict:
    """Every section of `profile`: params.yaml, merged with profiles/<profile>.yaml unless it is the base."""
    root = Path(root)
    base = read_yaml(root / BASE_FILE)
    if profile == BASE_PROFILE:
        return merge({}, base)
    path = root / PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {profile!r}: there is no {path}; "
                         f"the profiles are {profile_names(root)} ({BASE_PROFILE!r} is {BASE_FILE})")
    return merge(base, read_yaml(path))


def results_root(profile: str) -> Path:
    """Where a profile's results go, relative to the project root: results/ for the base (the
    committed ones), results/<profile>/ for every other, so no profile overwrites another's."""
    return Path("results") if profile == BASE_PROFILE else Path("results") / profile


def figures_root(profile: str) -> Path:
    return Path("figures") if profile == BASE_PROFILE else Path("figures") / profile


def load_stage(profile: str, stage: str, root: str | Path = ".", *, reads: tuple[str, ...] | list[str] = (),
               calibrated: bool = True) -> dict:
    """{section: params} for stage `stage` under `profile`: its own section and each section named in
    `reads`, as the profile's `reads.<stage>` overrides them (None for a section the stage does not
    read there). Every `calibrated: true` entry takes the calibration's choice (`apply_calibration`);
    `calibrated=False` drops the marks instead, for the calibration itself, which sweeps the recipes."""
    params = load_profile(profile, root)
    missing = [name for name in (stage, *reads) if name not in params]
    if missing:
        raise ValueError(f"profile {profile!r} has no section {missing}; its sections are "
                         f"{sorted(set(params) - {READS})}")
    view = params.get(READS, {}).get(stage) or {}
    sections = merge({name: params[name] for name in (stage, *reads)}, view)
    sections = {name: sections.get(name) for name in (stage, *reads)}
    if calibrated and any(_marked(section) for section in sections.values()):
        chosen = read_chosen(Path(root) / results_root(profile) / CALIBRATE_STAGE / CHOSEN_FILE)
    else:
        chosen = None
    return {name: apply_calibration(section, chosen) if section is not None else None
            for name, section in sections.items()}


def _marked(section) -> bool:
    """Whether a section, or one of its datasets, is marked `calibrated: true`."""
    if not isinstance(section, dict):
        return False
    datasets = section.get("datasets") or {}
    return bool(section.get("calibrated")) or any(isinstance(s, dict) and s.get("calibrated") for s in datasets.values())


TRAIN_KNOB = "train."   # a calibration knob of the training budget (e.g. train.max_epochs), not of the data


def split_knobs(setting: dict) -> tuple[dict, dict]:
    """(data knobs, training knobs without their `train.` prefix) of a calibration setting."""
    train = {k.removeprefix(TRAIN_KNOB): v for k, v in setting.items() if k.startswith(TRAIN_KNOB)}
    return {k: v for k, v in setting.items() if not k.startswith(TRAIN_KNOB)}, train


def apply_calibration(section: dict, chosen: dict | None) -> dict:
    """`section` with its `calibrated: true` marks applied from `chosen` (chosen.json's content):
    the synthetic study's `data` (and `unique2`) take the generator setting chosen for `synthetic`,
    and each dataset entry's `params` the recipe chosen for its `name`; a chosen `train.<key>`
    goes to the study's (or the dataset entry's) `train` instead. `chosen=None` drops the marks
    without applying anything (the calibration's own uncalibrated view)."""
    section = merge({}, section)
    if "calibrated" in section:           # the synthetic study: its generator
        if section["calibrated"] and chosen is not None:
            setting, train = split_knobs(_choice(chosen, "synthetic")["params"])
            if "unique2" in setting:
                section["unique2"] = setting.pop("unique2")
            section["data"] = {**section.get("data", {}), **setting}
            if train:
                section["train"] = {**section.get("train", {}), **train}
        section["calibrated"] = False     # applied once
    for label, spec in (section.get("datasets") or {}).items():
        if isinstance(spec, dict) and "calibrated" in spec:
            if spec.pop("calibrated") and chosen is not None:
                setting, train = split_knobs(_choice(chosen, spec["name"])["params"])
                spec["params"] = {**spec.get("params", {}), **setting}
                if train:
                    spec["train"] = {**spec.get("train", {}), **train}
    return section


def _choice(chosen: dict, name: str) -> dict:
    if name not in chosen:
        raise ValueError(f"the calibration chose nothing for {name!r} (it chose for {sorted(chosen)}): "
                         f"add a grid for it to the calibrate section, or remove its `calibrated: true`")
    return chosen[name]


def read_chosen(path: Path) -> dict:
    """What the calibrate stage chose; a clear error if it has not run for this profile."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: an entry marked `calibrated: true` takes its recipe from "
                                "the calibration; run the calibrate stage first (`dvc repro calibrate`, or "
                                "`python -m mcrlib.pipeline --profile <name>`, which runs it first)")
    return json.loads(path.read_text())
