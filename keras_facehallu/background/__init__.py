"""Background replacement: person segmentation + gradient saliency + face mask, pyramid blending.

Modules: ``segmentation`` (MediaPipe selfie segmentation via TFLite, an asset), ``saliency``
(gradient contours), ``blend`` (Laplacian pyramids, cover-resize), ``replace``
(:func:`~keras_facehallu.background.replace.replace_background`), ``cli`` (the command and the
``--background`` flag helpers). Submodules are imported on use, so this package is cheap to import.

Example:
    >>> from keras_facehallu.background.replace import replace_background
    >>> out, mask = replace_background("face.png", "beach.jpg")  # doctest: +SKIP
"""
