"""A one-process asyncio HTTPS receiver: the bench's fallback when nginx is not installed.

    python -m bench.harness.asyncreceiver --port P --cert server.pem --key server.key --log access.log [--delay-ms D]

HTTP/1.1 with keep-alive, ``Content-Length`` bodies; answers 200 ``ok`` to every request
and appends ``<unix time> <webhook-id> <path> 200 <webhook-signature>`` per POST to the log
(the same format as the bench's nginx). One thread, no per-request allocation it can avoid:
it must not be the bottleneck (the bench prints its CPU per delivery). With ``--delay-ms`` every
answer waits that long first (a slow endpoint; the wait costs no CPU).
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import time

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_BAD = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log, delay_s: float) -> None:  # type: ignore[no-untyped-def]
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ", 2)[:2]
            fields: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    fields[name.strip().lower()] = value.strip()
            if "content-length" not in fields and fields.get("transfer-encoding"):
                writer.write(_BAD)
                await writer.drain()
                return
            length = int(fields.get("content-length") or 0)
            if length:
                await reader.readexactly(length)
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(_OK)
            if method == "POST":
                log.write(f"{time.time():.6f} {fields.get('webhook-id', '-')} {target.split('?', 1)[0]} 200 "
                          f"{fields.get('webhook-signature', '-')}\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError, ValueError):
        pass
    finally:
        writer.close()


async def _main(args: argparse.Namespace) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    log = open(args.log, "a", buffering=1, encoding="latin-1")  # noqa: SIM115 - line-buffered: the bench tails it
    server = await asyncio.start_server(lambda r, w: _serve(r, w, log, args.delay_ms / 1000), "127.0.0.1", args.port, ssl=ctx, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    log.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="answer every request after this long")
    asyncio.run(_main(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
