"""A small OpenAI-compatible /v1/completions server on 127.0.0.1, run in a thread (test helper).

It answers with a configured text (cut at ``max_tokens`` characters and at ``stop``),
streams it as SSE when asked, can fail the first N requests with a status, and records
every request body; it can refuse ``suffix`` as vLLM does. Given a ``vocab`` (special tokens), it also answers ``POST /tokenize`` as
llama.cpp and vLLM do: a vocabulary token is one token id, any other text one id per character.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    def __init__(self, text: str = "return total\n", *, fail_first: int = 0, fail_status: int = 503,
                 vocab: set[str] | None = None, refuse_suffix: int | None = None):
        self.text = text
        #: answer a request carrying `suffix` with this status, as vLLM (400) and older llama.cpp servers (500) do
        self.refuse_suffix = refuse_suffix
        self.vocab = vocab
        self.tokenized: list[str] = []
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[dict] = []
        self.attempts = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":  # like Ollama or transformers serve when it has no vocab
                    if server.vocab is None:
                        return self._json(404, {"detail": "Not Found"})
                    text = body.get("content", body.get("prompt", ""))
                    server.tokenized.append(text)
                    return self._json(200, {"tokens": [7] if text in server.vocab else list(range(len(text)))})
                server.attempts += 1
                if server.attempts <= server.fail_first:
                    return self._json(server.fail_status, {"error": {"message": "warming up"}})
                if server.refuse_suffix and "suffix" in body:
                    return self._json(server.refuse_suffix, {"error": {"message": "Unsupported param: suffix"}})
                if self.path != "/v1/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                if body.get("model") not in ("tiny", "my-lora"):
                    return self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                server.requests.append({**body, "authorization": self.headers.get("Authorization")})
                text = server.text[: body.get("max_tokens", 16)]
                for stop in body.get("stop") or []:
                    text = text.split(stop)[0]
                if not body.get("stream"):
                    choices = [{"index": i, "text": text, "finish_reason": "stop"} for i in range(body.get("n", 1))]
                    return self._json(200, {"id": "cmpl-x", "object": "text_completion", "choices": choices,
                                            "usage": {"prompt_tokens": 11, "completion_tokens": len(text)}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i in range(0, len(text), 3):
                    chunk = {"choices": [{"index": 0, "text": text[i:i + 3], "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def _json(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
