"""Multimodal Rerank Arena: `python app.py` starts the app (also the Hugging Face Space entry).

Configured by environment variables, each described in the README's *Configuration* table: the
weights (RERANKER_<KEY>_MODEL / _ADAPTER), the machine (RERANKER_DEVICE, RERANKER_DTYPE,
RERANKER_COMPILE, RERANKER_VARLEN_ATTENTION), the files (RERANKER_DB, RERANKER_CACHE), the caches'
sizes (RERANKER_VISION_CACHE_MB, RERANKER_PREFIX_CACHE_MB, RERANKER_THUMBNAIL_CACHE_MB), who may
judge (RERANKER_REQUIRE_LOGIN, RERANKER_BROWSER_SECRET), and Gradio's GRADIO_SERVER_NAME / _PORT.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading

# A stop signal (Ctrl-C; SIGTERM from a Space restarting or `kill`) only asks the app to stop,
# from the first line on: raised as KeyboardInterrupt it could land anywhere (a traceback from
# an import; swallowed while Gradio starts, leaving the server running). A second one ends the
# process at once.
stop_requested = threading.Event()


def _request_stop(signum, frame) -> None:
    if stop_requested.is_set():
        os._exit(128 + signum)
    stop_requested.set()


if __name__ == "__main__":
    for _number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_number, _request_stop)


def server_settings_problem() -> str | None:
    """What is wrong with Gradio's GRADIO_SERVER_PORT / GRADIO_SERVER_NAME, in one line, or None.
    Gradio reads the port as it is imported (a traceback), and an address it cannot listen on
    reads "Cannot find empty port" (blaming the port)."""
    port = os.environ.get("GRADIO_SERVER_PORT", "").strip()
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):  # ("²" is a digit to isdigit)
        return f"GRADIO_SERVER_PORT={port!r}: expected a port number, 1 to 65535"
    host = os.environ.get("GRADIO_SERVER_NAME", "").strip()
    if host:
        try:
            family, _, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind(address)  # any free port: only whether this machine has that address
        except (OSError, UnicodeError) as error:  # UnicodeError: a name with an empty or over-long part ("my..host")
            reason = getattr(error, "strerror", None) or error
            return (f"GRADIO_SERVER_NAME={host!r}: the app cannot listen there ({reason}); "
                    "use 127.0.0.1, 0.0.0.0 (every interface) or an address of this machine")
    return None


# The PDF render worker processes are spawned, and a spawned process runs this file again as
# "__mp_main__" before it can take work: it must not import the app, load the models or build it.
if __name__ != "__mp_main__":
    if problem := server_settings_problem():
        sys.exit(f"error: {problem}")
    from reranker.documents import ignore_pillow_size_warning
    from reranker.ui import build_app, create_arena, launch_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ignore_pillow_size_warning()  # an image too large is refused by name; Pillow's warning only repeated it
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests, one line each
    try:
        arena = create_arena()
        demo = build_app(arena)
        # Rankings (the Rank button and /rank) run up to three at a time, their model work one at a
        # time (Arena.scoring); judging, exporting and browsing run alongside.
        demo.queue(default_concurrency_limit=8)
    except (ValueError, RuntimeError, OSError) as error:  # a setting given wrong, the database, a
        sys.exit(f"error: {error}")  # folder Gradio cannot write (GRADIO_TEMP_DIR, a full disk): named in one line

if __name__ == "__main__":
    from reranker.ui import shut_down

    if not stop_requested.is_set():
        demo.launch(**launch_options(arena), prevent_thread_lock=True)
        stop_requested.wait()
        logging.getLogger("app").info("stopping: no new requests; the ones under way get a few seconds")
        demo.close()
    # The server has stopped: uploads still being read give up their pages, and model work
    # under way ends (or the process ends without waiting for it).
    shut_down(arena)
    # Then the process ends without Python's own exit: C++ static destructors run at exit while
    # torch's worker threads may still be winding down from the last batch aborted it (SIGABRT)
    # once in a CI run. Every judgment is committed; the render workers are stopped.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
