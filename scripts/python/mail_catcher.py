"""A real SMTP server for the notification tests: aiosmtpd on 127.0.0.1,
writing every message it accepts into a folder as one JSON file (the
envelope, the headers that matter, and the decoded text and HTML parts,
parsed by Python's own email package), so a Rust test reads back exactly
what a mail client would show.

    python mail_catcher.py PORT DIR

Prints "listening" once it accepts connections; runs until killed. Each
file is written under a temporary name and renamed, so a reader never sees
half a message.
"""

import asyncio
import email
import email.policy
import json
import os
import sys
import uuid

from aiosmtpd.smtp import SMTP


class Catcher:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html") and not part.is_multipart():
                # Lines as a mail client shows them (SMTP carries CRLF).
                parts[kind] = part.get_content().replace("\r\n", "\n")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        name = uuid.uuid4().hex
        tmp = os.path.join(self.folder, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.folder, f"{name}.json"))
        return "250 Message accepted for delivery"


async def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Catcher(folder), hostname="mail.test"),
        "127.0.0.1",
        port,
        reuse_address=True,
    )
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
