"""A real SMTP server for the notification tests: aiosmtpd on 127.0.0.1,
writing every message it accepts into a folder as one JSON file (the
envelope, the headers that matter, and the decoded text and HTML parts,
parsed by Python's own email package), so a Rust test reads back exactly
what a mail client would show.

    python mail_catcher.py PORT DIR [--tls starttls|implicit --cert-out PEM]
                                    [--login USER:PASSWORD]

With --tls starttls the server refuses MAIL before STARTTLS; with --tls
implicit it speaks TLS from the first byte (as on port 465). Its
certificate, for 127.0.0.1, is signed by a private CA made at start-up,
whose certificate is written to --cert-out for the client to trust. With --login it requires AUTH (PLAIN
or LOGIN, offered only over TLS) with that user and password. Each record
says whether it came over TLS and as whom.

Prints "listening" once it accepts connections; runs until killed. Each
file is written under a temporary name and renamed, so a reader never sees
half a message.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import sys
import uuid

import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


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
            # STARTTLS sets session.ssl; on an implicit-TLS connection the
            # transport itself is the TLS one.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "login": (
                session.auth_data.login.decode()
                if isinstance(session.auth_data, LoginPassword)
                else None
            ),
        }
        name = uuid.uuid4().hex
        tmp = os.path.join(self.folder, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.folder, f"{name}.json"))
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


def private_ca(cert_out):
    """A certificate authority of the test's own (its certificate, PEM, at
    cert_out: what the client is told to trust) and, signed by it, the
    server's certificate for 127.0.0.1, both valid a day: the server's TLS
    context. As a private relay would be set up; a client that checks
    certificates properly refuses a CA certificate presented as a server's."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def builder(subject, issuer, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test CA")])
    ca = (
        builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")]),
            ca_name,
            key.public_key(),
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(cert_out, "wb") as f:
        f.write(ca.public_bytes(pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as d:
        cert_path, key_path = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(leaf.public_bytes(pem))
        with open(key_path, "wb") as f:
            f.write(
                key.private_bytes(
                    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return context


async def main():
    args = argparse.ArgumentParser()
    args.add_argument("port", type=int)
    args.add_argument("folder")
    args.add_argument("--tls", choices=["starttls", "implicit"])
    args.add_argument("--cert-out")
    args.add_argument("--login")
    a = args.parse_args()
    os.makedirs(a.folder, exist_ok=True)
    context = None
    if a.tls:
        if not a.cert_out:
            args.error("--tls needs --cert-out")
        context = private_ca(a.cert_out)
    options = {}
    if a.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if a.login:
        user, password = a.login.split(":", 1)
        options.update(
            authenticator=authenticator(user, password),
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS: with implicit TLS the
            # whole connection is encrypted before AUTH is offered.
            auth_require_tls=a.tls != "implicit",
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Catcher(a.folder), hostname="mail.test", **options),
        "127.0.0.1",
        a.port,
        reuse_address=True,
        ssl=context if a.tls == "implicit" else None,
    )
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
