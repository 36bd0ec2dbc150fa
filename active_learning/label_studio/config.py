"""The labeling config: the XML we give a project, reading it back, and checking annotations against it.

Label Studio stores whatever an annotation's ``result`` holds (it does not validate it against the config), so
:func:`validate_annotation` does: exactly one choice of the ``Choices`` tag, a class the config offers.
The task data keys below are the variables the config shows (``$image``, ``$note``) and what a task carries for
us (the sample it labels, its round, the file name).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from active_learning.errors import DataError, LabelStudioError

IMAGE_KEY = "image"
SAMPLE_ID_KEY = "sample_id"
ROUND_KEY = "round"
FILENAME_KEY = "filename"
NOTE_KEY = "note"  # what the annotator should know: the model's guess, or why a labeled sample is back for review
TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ChoicesConfig:
    """The single-choice classification part of a labeling config."""

    from_name: str
    to_name: str
    classes: tuple[str, ...]


def labeling_config(classes: Sequence[str], from_name: str = "label", to_name: str = "image") -> str:
    """A labeling config showing the image ``$image`` with one radio choice per class (XML-escaped).

    Raises:
        DataError: no classes, an empty or repeated class, or a tag name that is not a simple identifier.
    """
    classes = [str(name) for name in classes]
    if not classes:
        raise DataError("The dataset has no classes to label: set dataset.default_classes or the field's classes.")
    if any(not name.strip() for name in classes):
        raise DataError("A class name is empty: give every class a name before labeling in Label Studio.")
    repeated = sorted(name for name, count in Counter(classes).items() if count > 1)
    if repeated:
        raise DataError(f"Classes {repeated[:5]} appear more than once in the class list.")
    for tag_name in (from_name, to_name):
        if not TAG_NAME.match(tag_name):
            raise DataError(f"Tag name {tag_name!r} must be a simple identifier such as 'label' or 'image'.")
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in classes)
    return (
        "<View>\n"
        f"  <Header value=\"${NOTE_KEY}\" size=\"6\"/>\n"
        f"  <Image name={quoteattr(to_name)} value=\"${IMAGE_KEY}\" maxWidth=\"480px\"/>\n"
        f"  <Choices name={quoteattr(from_name)} toName={quoteattr(to_name)} choice=\"single-radio\" "
        "showInLine=\"true\" required=\"true\">\n"
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def parse_labeling_config(config: str, from_name: str | None = None) -> ChoicesConfig:
    """The ``Choices`` tag of a labeling config (the one named ``from_name`` when given) and its class values.

    Raises:
        LabelStudioError: the config is not XML or has no such ``Choices`` tag.
    """
    try:
        root = ElementTree.fromstring(config or "")
    except ElementTree.ParseError as error:
        raise LabelStudioError(f"The project's labeling config is not valid XML ({error}).") from None
    for element in root.iter("Choices"):
        name = element.get("name")
        if from_name is not None and name != from_name:
            continue
        classes = tuple(choice.get("value", choice.text or "") for choice in element.iter("Choice"))
        return ChoicesConfig(from_name=name or "", to_name=element.get("toName", ""), classes=classes)
    wanted = f" named {from_name!r}" if from_name else ""
    raise LabelStudioError(
        f"The project's labeling config has no Choices tag{wanted}: it was not made by this library "
        "(labeling_config) or was edited; restore it or use a new project."
    )


def choice_result(label: str, config: ChoicesConfig) -> list[dict[str, Any]]:
    """An annotation or prediction ``result`` that chooses ``label``."""
    return [{"from_name": config.from_name, "to_name": config.to_name, "type": "choices",
             "value": {"choices": [label]}}]


def validate_annotation(
    result: Any, config_classes: Sequence[str], from_name: str = "label", to_name: str = "image"
) -> str:
    """The one class an annotation's ``result`` chooses, checked against the labeling config.

    Raises:
        DataError: an empty result, a region of another tag, a wrong target, not exactly one choice, or a class
            outside the config. The message is the reason, short enough to count.
    """
    if not isinstance(result, list) or not result:
        raise DataError("empty result")
    regions = [region for region in result if isinstance(region, dict)]
    if len(regions) != len(result):
        raise DataError("malformed result")
    others = sorted({str(region.get("from_name")) for region in regions if region.get("from_name") != from_name})
    if others:
        raise DataError(f"unexpected from_name {others[0]!r}")
    if len(regions) != 1:
        raise DataError(f"{len(regions)} results for {from_name!r}, expected 1")
    region = regions[0]
    if region.get("to_name") != to_name:
        raise DataError(f"to_name {region.get('to_name')!r}, expected {to_name!r}")
    if region.get("type", "choices") != "choices":
        raise DataError(f"type {region.get('type')!r}, expected 'choices'")
    choices = (region.get("value") or {}).get("choices") if isinstance(region.get("value"), dict) else None
    if not isinstance(choices, list) or len(choices) != 1:
        count = len(choices) if isinstance(choices, list) else 0
        raise DataError(f"{count} choices, expected 1")
    label = choices[0]
    if not isinstance(label, str) or label not in set(config_classes):
        raise DataError(f"class {label!r} is not in the labeling config")
    return label
