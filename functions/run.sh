#!/bin/bash
# ProxyFunction bootstrap: the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap)
# runs this script as the "handler", waits for GET /healthz to answer, then forwards each
# invoke to the app as HTTP and streams the response back.
#
# The managed runtime's own bootstrap, which normally puts the layer's /opt/python on
# sys.path, is bypassed here, so add it explicitly. The function code is the cwd
# (/var/task), which `python3 -m` puts on sys.path.
export PYTHONPATH="/opt/python${PYTHONPATH:+:${PYTHONPATH}}"

# Bind to loopback only: the adapter is the sole client. Access logs are off to keep a
# log line per request off the hot path; request logging belongs to the app. HTTP/1.1 is read by
# httptools (llhttp, in C): named, so that a layer without it fails at start-up, not slower.
exec python3 -m uvicorn --host 127.0.0.1 --port "${PORT:-8000}" --http httptools --no-access-log meterway.proxy.handlers.app:app
