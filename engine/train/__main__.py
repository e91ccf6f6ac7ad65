"""`python -m engine.train RUN_DIR [--resume]` (or `accelerate launch -m engine.train ...`): the trainer.

The SIGTERM handler is installed here, before any other import: a cancel during the seconds of imports then stops the
run cleanly at its first step instead of killing it.
"""

import signal
import sys

from engine.train import stop_flag

signal.signal(signal.SIGTERM, stop_flag.request_stop)

from engine.train import trainer  # noqa: E402 - after the handler, on purpose

sys.exit(trainer.main())
