"""ApiFunction: the management API (``/api``) that joins the features' routes behind one admin-key
check, one error envelope and one OpenAPI document."""
