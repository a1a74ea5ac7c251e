"""The canonical 128×128 frame every part of the package agrees on.

The aligned crop puts the two eye centres at fixed points (fractions of the crop size), framed like
the paper's figures: the whole head, some neck and shoulders, background around. ``LEFT_EYE`` is the
eye that appears on the image's left (the subject's right eye).

Example:
    >>> from keras_facehallu.face import canonical
    >>> canonical.eye_points(128)
    ((51.2, 53.76), (76.8, 53.76))
"""

from __future__ import annotations

CROP_SIZE = 128
LEFT_EYE = (0.40, 0.42)
RIGHT_EYE = (0.60, 0.42)


def eye_points(size: int = CROP_SIZE, left=LEFT_EYE, right=RIGHT_EYE):
    """Eye centres in pixels for a crop of ``size``×``size``."""
    return (
        (round(left[0] * size, 4), round(left[1] * size, 4)),
        (round(right[0] * size, 4), round(right[1] * size, 4)),
    )
