"""The Lambda runtime's part, run by the clean interpreter inside a built function's code directory:
import the handler the template names, call it once with the event on stdin, and write its answer
as JSON to the path given (stdout belongs to the function's logs). Standard library only: nothing
else is on that interpreter's path but the artifact.

    python -S lambda_runtime.py <Handler> <answer.json> < event.json
"""

import importlib
import json
import os
import sys
import uuid


class Context:
    """The attributes of Lambda's context object that the handlers and Powertools read."""

    def __init__(self) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    handler_name, answer_path = sys.argv[1:]
    module, _, function = handler_name.rpartition(".")
    handler = getattr(importlib.import_module(module), function)
    answer = handler(json.load(sys.stdin), Context())
    with open(answer_path, "w") as answer_file:
        json.dump(answer, answer_file)


if __name__ == "__main__":
    main()
