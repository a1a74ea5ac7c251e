"""The background CLI, and the ``--background IMAGE`` flag other commands reuse.

``python -m keras_facehallu.background IMAGE --background BG [--face-mask MASK.png] -o OUT.png``

Any command that writes images adds the flag and applies it to each image it produces:

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_background_argument(parser)
    >>> args = parser.parse_args([])
    >>> apply_background(np.zeros((8, 8, 3), np.uint8), args).shape  # no --background: unchanged
    (8, 8, 3)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from keras_facehallu.version import __version__


def add_background_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``--background IMAGE`` (and ``--background-levels``, ``--background-feather``).

    Args:
        parser: the command's parser (or an argument group).

    Returns:
        ``parser``.
    """
    parser.add_argument(
        "--background",
        metavar="IMAGE",
        default=None,
        help="replace the background of every output image with IMAGE (scaled to cover, "
        "centre-cropped, Laplacian-pyramid blended)",
    )
    parser.add_argument(
        "--background-levels",
        type=int,
        default=None,
        metavar="N",
        help="pyramid levels for --background (default: matched to the feathering)",
    )
    parser.add_argument(
        "--background-feather",
        type=float,
        default=0.02,
        metavar="F",
        help="mask feathering sigma as a fraction of the shorter side (default 0.02)",
    )
    return parser


def apply_background(image, args: argparse.Namespace, face_mask=None):
    """Returns ``image`` with its background replaced when ``args.background`` is set.

    Args:
        image: uint8 RGB [H, W, 3] or float [-1, 1] (the composite has the same dtype).
        args: parsed arguments from a parser given :func:`add_background_argument`.
        face_mask: optional face mask of the image ([H, W] or [H, W, 1]).

    Returns:
        The composite, or ``image`` itself when no ``--background`` was given.
    """
    background = getattr(args, "background", None)
    if background is None:
        return image
    from keras_facehallu.background.replace import replace_background

    composite, _ = replace_background(
        image,
        background,
        face_mask,
        levels=getattr(args, "background_levels", None),
        feather=getattr(args, "background_feather", 0.02),
    )
    return composite


def main(argv: list[str] | None = None) -> int:
    """``python -m keras_facehallu.background``."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_facehallu.background",
        description="Replace the background behind the person in IMAGE (selfie segmentation + "
        "gradient saliency + optional face mask, Laplacian-pyramid blending).",
    )
    parser.add_argument("image", help="the (hallucinated) image, any size")
    parser.add_argument("--background", required=True, metavar="IMAGE", help="new background")
    parser.add_argument("--face-mask", default=None, metavar="MASK", help="face mask image")
    parser.add_argument("-o", "--output", required=True,
                        help="output image (.png, .jpg or .webp; marked as synthetic)")
    parser.add_argument("--mask-output", default=None, help="also write the soft foreground mask")
    parser.add_argument("--levels", type=int, default=None, help="pyramid levels (default: auto)")
    parser.add_argument("--feather", type=float, default=0.02, help="feather sigma / shorter side")
    parser.add_argument("--no-segmentation", action="store_true", help="skip person segmentation")
    parser.add_argument("--no-saliency", action="store_true", help="skip gradient saliency")
    parser.add_argument("--no-face-mask", action="store_true", help="ignore --face-mask")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)

    from keras_facehallu.background.replace import replace_background
    from keras_facehallu.outputs import synthetic_metadata, write_image

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            composite, mask, details = replace_background(
                args.image,
                args.background,
                args.face_mask,
                use_segmentation=not args.no_segmentation,
                use_saliency=not args.no_saliency,
                use_face_mask=not args.no_face_mask,
                levels=args.levels,
                feather=args.feather,
                return_details=True,
            )
        for note in details["notes"]:
            print(f"note: {note}", file=sys.stderr)
        for item in caught:
            print(f"warning: {item.message}", file=sys.stderr)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        meta = synthetic_metadata(
            "replace_background", "none", source=Path(args.image).name,
            description="Composite image: the background behind the person was replaced by "
            "keras-facehallu (segmentation + pyramid blending) in an image that is usually "
            "itself hallucinated by a neural network.",
        )
        write_image(args.output, composite, meta)
        if args.mask_output:
            write_image(args.mask_output, np.rint(mask * 255).astype(np.uint8), meta)
    except (OSError, ValueError) as exc:  # unreadable or too large inputs, unwritable outputs
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(args.output)
    return 0
