"""Multimodal Rerank Arena: `python app.py` starts the app (also the Hugging Face Space entry).

Configuration by environment variables (see README): RERANKER_<KEY>_MODEL / _ADAPTER (local or
Hub weights), RERANKER_DEVICE, RERANKER_DTYPE, RERANKER_DB (database file), RERANKER_CACHE (image
cache folder), RERANKER_VISION_CACHE_MB / RERANKER_PREFIX_CACHE_MB (model caches), RERANKER_COMPILE=1
(torch.compile on GPU), GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
"""

from __future__ import annotations

import logging
import signal
import sys

# The PDF render worker processes are spawned, and a spawned process runs this file again as
# "__mp_main__" before it can take work: it must not import the app, load the models or build it.
if __name__ != "__mp_main__":
    from reranker.ui import build_app, create_arena, launch_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests, one line each
    try:
        arena = create_arena()
    except (ValueError, RuntimeError) as error:  # a setting given wrong, the database: named in one line
        sys.exit(f"error: {error}")
    demo = build_app(arena)
    # Rankings (the Rank button and /rank) run up to three at a time, their model work one at a
    # time (Arena.scoring); judging, exporting and browsing run alongside.
    demo.queue(default_concurrency_limit=8)

if __name__ == "__main__":
    from reranker.ui import shut_down

    # A stop signal (a Space restarting, `kill`) shuts down as Ctrl-C does, so the clean-up runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        demo.launch(**launch_options(arena))
    except KeyboardInterrupt:  # a signal while the server was still starting (Gradio's own check)
        pass
    finally:
        # The server has stopped: uploads still being read give up their pages, and model work
        # under way ends (or the process ends without waiting for it).
        shut_down(arena)
