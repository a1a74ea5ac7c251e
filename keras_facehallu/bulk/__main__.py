"""``python -m keras_facehallu.bulk`` = ``facehallu-bulk``."""

import sys

from keras_facehallu.bulk.cli import main

sys.exit(main())
