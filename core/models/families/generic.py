"""Vision-language models of a type the studio has no description for: parts are named by every known family's
module names, and images are expanded by the processor's own ``replace_image_token``."""

from __future__ import annotations

from core.models.families.base import Family


class GenericVisionFamily(Family):
    name = "vision"
    label = "Vision-language model"
    size_dependent = True  # not known: measure every image size

    def __init__(self, known: list[Family]):
        def union(attr: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(m for f in known for m in getattr(f, attr)))

        self.projector_modules = union("projector_modules")
        self.vision_modules = union("vision_modules")
        self.quantize_skip = union("quantize_skip")
        self.batch_keys = union("batch_keys")
