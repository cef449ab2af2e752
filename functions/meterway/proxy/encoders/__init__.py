"""The wire formats the clients speak, one encoder each: how the gateway's answers, streams and
usage blocks look on the way out."""
