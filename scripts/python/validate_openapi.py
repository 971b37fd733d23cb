"""Validates an OpenAPI document (a file path, or - for stdin) against the
OpenAPI 3 specification; exits non-zero with the reasons when it does not."""
import json
import sys

from openapi_spec_validator import validate

source = sys.argv[1] if len(sys.argv) > 1 else "-"
text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
document = json.loads(text)
validate(document)
print(f"valid OpenAPI {document.get('openapi')}: {len(document.get('paths', {}))} paths")
