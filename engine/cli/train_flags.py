"""`studio train`'s options are the run config: one flag per RunConfig field (`--lora-r 16`, `--no-early-stopping`,
`--target-modules q_proj,v_proj`), generated from the model with its description as help, plus `--config FILE`
(JSON or YAML), `--set key=value` and `--print-config`. What a user gives is collected as overrides; the same
RunConfig validation as the Train page then judges them, with the same sentences.

The flags are built only when the command is `train` (the model costs pydantic's import; `studio runs` and
`studio --help` stay instant)."""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

from engine.cli.common import UsageError

# Fields the quick form sets from --model and --data: a flag of their own would be a second way to say the same.
QUICK_FORM_FIELDS = {"base_model": "--model"}
NONE_WORDS = ("none", "null", "")


def flag_of(field: str) -> str:
    return QUICK_FORM_FIELDS.get(field, "--" + field.replace("_", "-"))


def add_field_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, each stored under overrides.<field> only when given."""
    from engine.train.config import RunConfig

    group = parser.add_argument_group("run settings (every field of the run config; defaults: the recommendations)")
    for name, field in RunConfig.model_fields.items():
        if name in QUICK_FORM_FIELDS:
            continue
        kind, choices, optional = _shape(field.annotation)
        flag = flag_of(name)
        common: dict[str, Any] = {"dest": f"field__{name}", "default": argparse.SUPPRESS, "help": field.description}
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif kind is list:
            group.add_argument(flag, type=_comma_list, metavar="A,B,...", **common)
        else:
            group.add_argument(flag, type=_converter(kind, optional), choices=choices, metavar=_metavar(choices, kind),
                               **common)


def _shape(annotation) -> tuple[type, tuple | None, bool]:
    """(base type, Literal choices or None, whether None is allowed) of a field's annotation."""
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        optional = type(None) in args
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0]), tuple(args), optional
    if typing.get_origin(annotation) is list:
        return list, None, optional
    return annotation, None, optional


def _converter(kind: type, optional: bool):
    def convert(text: str):
        if optional and text.strip().lower() in NONE_WORDS:
            return None
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        return text

    convert.__name__ = kind.__name__  # argparse says "invalid int value: 'x'"
    return convert


def _metavar(choices: tuple | None, kind: type) -> str | None:
    return "{" + ",".join(map(str, choices)) + "}" if choices else kind.__name__.upper()


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", dest="config_file", type=Path, help="a run config file (YAML or JSON); the "
                        "flags and --set override what it says")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="set any run config field (repeatable): --set lora_r=16 --set target_modules=[q_proj,"
                             "v_proj]; the value is read as YAML")
    parser.add_argument("--print-config", action="store_true", help="print the resolved run config (the "
                        "recommendations, the file, --set and the flags applied, then validated) as YAML and exit")


def overrides(args) -> dict:
    """The fields the user gave, from --set (in order) and then the field flags (a flag wins over --set)."""
    import yaml  # only `studio train` parses --set values

    from engine.train.config import RunConfig

    values: dict = {}
    for assignment in getattr(args, "assignments", []) or []:
        key, sep, raw = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--set {assignment!r} is not KEY=VALUE.")
        if key not in RunConfig.model_fields:
            raise UsageError(f"--set {key}: the run config has no such field; `studio train --help` lists them.")
        try:
            values[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            values[key] = raw
    for dest, value in vars(args).items():
        if dest.startswith("field__"):
            values[dest.removeprefix("field__")] = value
    return values


def load_file(path: Path) -> dict:
    """A run config file's fields (YAML is a superset of JSON: one reader for both)."""
    import yaml  # only `studio train --config` reads YAML

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"Cannot read the run config {path} ({err.strerror or err}).") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"The run config {path} is not valid YAML or JSON{where}.") from None
    if not isinstance(data, dict):
        raise UsageError(f"The run config {path} must be a mapping of field: value.")
    return data
