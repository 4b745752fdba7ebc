"""lane's CLI, with every generation of a local (llama.cpp) model appended to $LANE_GEN_LOG as one JSON line.

Why: a turn the engine rejects (a reply cut off at max_tokens, a prompt over the context window)
leaves no turn in `lane show`, so what the model wrote there is otherwise lost. This wraps
LocalModel._complete from the outside; lane itself is not changed. If that private method is
gone (lane changed), it runs lane as it is and logs nothing.

Usage: LANE_GEN_LOG=gen.jsonl python gen_log.py run feature-cart --no-ask
"""

from __future__ import annotations

import json
import os
import sys
import time


def _install() -> None:
    try:
        import lane.models.local as local
    except ImportError:
        return
    original = getattr(getattr(local, "LocalModel", None), "_complete", None)
    log = os.environ.get("LANE_GEN_LOG")
    if original is None or not log:
        return

    def logged(self, prompt, options, on_stream):  # type: ignore[no-untyped-def]
        started = time.time()
        error = None
        try:
            result = original(self, prompt, options, on_stream)
        except Exception as exc:  # a prompt over the context window: logged, then raised as before
            error, result = str(exc), None
            raise
        finally:
            choice = (result or {}).get("choices", [{}])[0]
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps({
                    "at": time.strftime("%H:%M:%S"), "seconds": round(time.time() - started, 2),
                    "prompt_chars": len(prompt), "usage": (result or {}).get("usage"),
                    "finish": choice.get("finish_reason"), "text": choice.get("text"), "error": error,
                    "prompt_tail": prompt[-200:],
                }) + "\n")
        return result

    local.LocalModel._complete = logged


_install()
from lane.cli.app import main  # noqa: E402

sys.argv[0] = "lane"
main()
