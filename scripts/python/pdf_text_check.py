"""Reads a PDF with pypdf, a PDF library the ingress does not use, and
checks that its text holds each expected string: the invoice a buyer
downloads opens in a reader and says what its document says
(ingress/tests/orders.rs).

Usage: pdf_text_check.py FILE, where FILE is JSON:
{"pdf_base64": "...", "expect": ["TAX INVOICE", ...]}
"""

import base64
import io
import json
import sys

from pypdf import PdfReader


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        check = json.load(f)
    reader = PdfReader(io.BytesIO(base64.b64decode(check["pdf_base64"])))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    missing = [s for s in check["expect"] if s not in text]
    if missing:
        print(f"missing from the PDF's text: {missing}\n--- text ---\n{text}")
        return 1
    print(f"{len(reader.pages)} page(s); all {len(check['expect'])} strings found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
