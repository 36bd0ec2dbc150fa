"""What every command module of the CLI shares: argument types, the progress bar, loading a dataset."""

from __future__ import annotations

import argparse
import re
from typing import Callable

from active_learning.errors import CurationError


def progress_bar(desc: str) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, bar_format="{percentage:3.0f}%|{bar:30}| {elapsed}<{remaining} {desc}")

    def update(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction, 1)
        bar.set_description_str(f"{desc}: {message}"[:70], refresh=False)
        bar.refresh()

    return update, bar.close


def csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def int_list(value: str) -> list[int]:
    """``--seeds 0,1,2``: one or more comma-separated non-negative integers."""
    try:
        seeds = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        seeds = None
    if not seeds or any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated non-negative integers (e.g. 0,1,2), "
                                         f"got {value!r}")
    return seeds


def seed_list(value: str) -> list[int]:
    """``--seed 3``: one non-negative integer, as a one-seed list."""
    return [at_least(0, "a seed")(value)]


def at_least(minimum: int, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(f"expected {what} of at least {minimum}, got {value!r}")
        return number

    parse.__name__ = f"integer >= {minimum}"
    return parse


def fraction(value: str) -> float:
    """A share in [0, 1)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 up to (not including) 1, e.g. 0.2; "
                                         f"got {value!r}")
    return number


def class_names(value: str) -> str:
    """``--classes a,b,c``: distinct non-empty names (returned as given, split by ``csv_list``)."""
    names = csv_list(value) or []
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated class names (e.g. cat,dog), got {value!r}")
    return value


def load_dataset(name: str):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        datasets = ", ".join(fo.list_datasets()) or "none"
        raise CurationError(f"Dataset {name!r} does not exist (datasets: {datasets}); create it with `curation import`.")
    return fo.load_dataset(name)


def announce(message: str) -> None:
    """Print what will be trained and why above the progress bar, before the training starts."""
    from tqdm import tqdm

    tqdm.write(f"{message[:1].upper()}{message[1:]}.")


#: Settings whose command-line flag is not simply ``--`` + the name with dashes (library name -> flag).
FLAG_NAMES = {"fit_view": "--fit-tag", "n_groups": "--groups", "n_permutations": "--permutations",
              "random_state": "--seed", "simulate_field": "--simulate-annotator"}

_SETTING = re.compile(r"`([a-z][a-z0-9_]*)(?:=([^`]*))?`")


def flag_for(setting: str, value: str | None = None,
             flags: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The command-line spelling of a library setting, or None when the CLI has no flag for it.

    ``new_project=True`` -> ``--new-project``; ``folds=3`` -> ``--folds 3``; ``fill=False`` -> ``--no-fill``;
    ``label_field=None`` -> ``--label-field ''``; with ``flags`` empty every setting is taken to have its flag.
    """
    flag = FLAG_NAMES.get(setting, "--" + setting.replace("_", "-"))
    negated = "--no-" + flag[2:]
    known = (lambda f: f in flags) if flags else (lambda f: f != negated)
    value = None if value is None else value.strip().strip("'\"")
    if value in ("True", "False"):
        wanted = value == "True"
        if known(flag):
            return flag if wanted else f"without {flag}"
        if known(negated):
            return f"without {negated}" if wanted else negated
        return None
    if not known(flag):
        return None
    if value is None:
        return flag
    return f"{flag} ''" if value in ("None", "") else f"{flag} {value}"


def cli_message(text: str, flags: set[str] | frozenset[str] = frozenset()) -> str:
    """A library message for the terminal: the settings it names in backticks become this CLI's flags.

    The library names settings (an App or notebook user cannot pass flags); ``flag_for`` maps them. With
    ``flags`` (every option string of the parser), a backticked name that is no flag of ours is left as it is.
    """
    def replace(match: re.Match) -> str:
        return flag_for(match.group(1), match.group(2), flags) or match.group(0)

    return _SETTING.sub(replace, text)


def option_strings(parser: argparse.ArgumentParser) -> frozenset[str]:
    """Every ``--flag`` of ``parser`` and of its subcommands."""
    found: set[str] = set()
    for action in parser._actions:  # argparse keeps no public list of actions
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.update(option_strings(child))
    return frozenset(found)
