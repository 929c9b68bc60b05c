"""A real SMTP server for the tests, from Debian's python3-aiosmtpd.

    /usr/bin/python3 tests/it/common/smtp_sink.py PORT FOLDER

Listens on 127.0.0.1:PORT, prints "ready" once it does, and writes each message it accepts to
FOLDER/<n>.eml, its first line `X-Envelope-To:` with the recipients the client named (RCPT TO).
Runs until killed.
"""

import os
import sys
import time

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:04}.eml")
        with open(path + ".part", "wb") as part:
            part.write(("X-Envelope-To: " + ", ".join(envelope.rcpt_tos) + "\r\n").encode())
            part.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 Message accepted"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
