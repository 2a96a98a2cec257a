"""Language server (pygls): inline completion over the engine, in-process or over HTTP."""
