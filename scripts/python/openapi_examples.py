"""Checks that every request example in an OpenAPI 3.1 document validates
against the schema it documents: what a client generated from the document
would send must be what the document says the API takes.

Usage: openapi_examples.py FILE   (prints one line per example; exits
non-zero, naming each failure, when any example does not validate)."""
import json
import sys

from openapi_schema_validator import OAS31Validator

document = json.load(open(sys.argv[1], encoding="utf-8"))
components = document.get("components", {})
failures = []
checked = 0
for path, operations in sorted(document.get("paths", {}).items()):
    for method, operation in sorted(operations.items()):
        body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
        if not body or "schema" not in body:
            continue
        examples = []
        if "example" in body:
            examples.append(body["example"])
        examples += [e.get("value") for e in body.get("examples", {}).values()]
        if not examples:
            failures.append(f"{method.upper()} {path}: a JSON body without an example")
            continue
        # The schema with the document's components, so $refs resolve.
        schema = dict(body["schema"], components=components)
        for example in examples:
            checked += 1
            errors = sorted(OAS31Validator(schema).iter_errors(example), key=str)
            if errors:
                failures.append(
                    f"{method.upper()} {path}: example {json.dumps(example)} does not validate: "
                    + "; ".join(e.message for e in errors)
                )
            else:
                print(f"ok  {method.upper()} {path}")
for failure in failures:
    print(f"FAIL {failure}")
print(f"{checked} examples checked, {len(failures)} failures")
sys.exit(1 if failures else 0)
