"""A GGUF model behind llama-cpp-python's OpenAI-compatible server, for `run.sh --server`.

  python serve.py MODEL.gguf PORT [--alias NAME] [--null-content-fix]

Two things differ from `python -m llama_cpp.server --model MODEL.gguf`, both found while running
the coder through it (bench/coding_loop/README.md):

- The model is loaded inside lane's `without_amx` (lane/models/local.py): on a virtual machine
  whose CPU lists AMX without enabling it, the plain server dies of SIGILL (exit 132) on its first
  token. lane's in-process model has this work-around; the server does not.
- `--null-content-fix` turns an assistant message's `"content": null` into `""` before the server
  reads the request. llama-cpp-python's server (0.3.36) answers HTTP 500 to such a message, which
  the OpenAI API allows and lane sends after every tool call. Without the flag, the coder's first
  turn after a tool call fails.
"""

from __future__ import annotations

import argparse
import json

import llama_cpp
import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings

from lane.models.local import without_amx

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("port", type=int)
parser.add_argument("--alias", default="gemma270m")
parser.add_argument("--n-ctx", type=int, default=8192)
parser.add_argument("--chat-format", default="chatml-function-calling", help="llama-cpp-python's handler that supports `tools`")
parser.add_argument("--null-content-fix", action="store_true")
args = parser.parse_args()

with without_amx(llama_cpp):
    app = create_app(
        server_settings=ServerSettings(host="127.0.0.1", port=args.port),
        model_settings=[ModelSettings(model=args.model, model_alias=args.alias, chat_format=args.chat_format,
                                      n_ctx=args.n_ctx, verbose=False)],
    )

if args.null_content_fix:
    from starlette.middleware.base import BaseHTTPMiddleware

    async def null_content_to_empty(request, call_next):  # type: ignore[no-untyped-def]
        if request.method == "POST" and request.url.path.endswith("/chat/completions"):
            body = json.loads(await request.body())
            for message in body.get("messages", []):
                if message.get("role") == "assistant" and message.get("content") is None:
                    message["content"] = ""
            request._body = json.dumps(body).encode()
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=null_content_to_empty)

uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
