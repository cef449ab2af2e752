"""The shared core: settings, errors, observability, AWS clients and DynamoDB helpers, UTC time and
money. It imports no feature."""
