#!/usr/bin/env python3
"""An SMTP submission server on loopback for ticketlake's e-mail tests (aiosmtpd).

It makes its own certificate authority and a server certificate for 127.0.0.1 and
localhost (openssl), writes the CA to <spool>/ca.pem, and listens on a free port of
127.0.0.1, which it prints as "port N" on the first line of stdout. Unless --no-tls is
given, it offers STARTTLS and refuses AUTH and MAIL before it; it always requires AUTH
(PLAIN or LOGIN) with --user and --password.

Each accepted message is kept as <spool>/msg-N.eml (the bytes received) with
<spool>/msg-N.json: the envelope, whether the session was under TLS, and the login.
It runs until its stdin closes (the test's end).
"""

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def make_certificates(spool):
    """A CA and a server certificate signed by it, both valid two days."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, cwd=spool,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=ticketlake test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    with open(os.path.join(spool, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(spool, "server.pem"),
                            os.path.join(spool, "server.key"))
    return context


class Spool:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, f"msg-{self.count}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        login = session.auth_data.login.decode() if session.auth_data else None
        with open(base + ".json", "w") as f:
            json.dump({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "login": login,
            }, f)
        return f"250 OK queued as q{self.count}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spool", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--no-tls", action="store_true")
    args = p.parse_args()
    tls = None if args.no_tls else make_certificates(args.spool)
    user, password = args.user.encode(), args.password.encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user and auth_data.password == password)
        # handled=False: aiosmtpd answers "535 … credentials invalid" itself
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    handler = Spool(args.spool)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="localhost", tls_context=tls,
                         require_starttls=tls is not None, authenticator=authenticator,
                         auth_required=True, auth_require_tls=tls is not None),
            "127.0.0.1", 0)
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        # until the test closes our stdin
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
