"""``python -m keras_facehallu.background IMAGE --background BG [--face-mask MASK] -o OUT.png``."""

import sys

from keras_facehallu.background.cli import main

if __name__ == "__main__":
    sys.exit(main())
