"""Worker "hosts" in network namespaces made by the test, wired to the root namespace by veth pairs.

Only addresses on the veth pairs this module creates are used (10.231.x.0/30 inside them).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import threading
from dataclasses import dataclass

import pytest


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def require_netns() -> None:
    problem = None
    if shutil.which("ip") is None:
        problem = "iproute2's `ip` is not installed"
    elif os.geteuid() != 0:
        problem = "creating network namespaces needs root"
    if problem:
        pytest.skip(problem)


@dataclass
class Host:
    namespace: str
    root_link: str
    root_address: str  # the root namespace's end: where Redis, the database and SMTP answer
    address: str

    def cut(self) -> None:
        ip("link", "set", self.root_link, "down")

    def restore(self) -> None:
        ip("link", "set", self.root_link, "up")

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]


def make_hosts(count: int) -> list[Host]:
    require_netns()
    hosts = []
    tag = f"{os.getpid() % 10000}{random.randint(0, 9)}"
    base = random.randint(1, 200)
    try:
        for index in range(count):
            namespace, root_link, inner_link = f"eg{tag}h{index}", f"eg{tag}r{index}", f"eg{tag}i{index}"
            subnet = f"10.231.{base + index}"
            ip("netns", "add", namespace)
            ip("link", "add", root_link, "type", "veth", "peer", "name", inner_link)
            ip("link", "set", inner_link, "netns", namespace)
            ip("addr", "add", f"{subnet}.1/30", "dev", root_link)
            ip("link", "set", root_link, "up")
            ip("netns", "exec", namespace, "ip", "addr", "add", f"{subnet}.2/30", "dev", inner_link)
            ip("netns", "exec", namespace, "ip", "link", "set", inner_link, "up")
            ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
            hosts.append(Host(namespace, root_link, f"{subnet}.1", f"{subnet}.2"))
    except subprocess.CalledProcessError as exc:
        remove_hosts(hosts)
        message = f"could not create network namespaces: {exc.stderr.decode(errors='replace').strip()}"
        pytest.skip(message)
    return hosts


def remove_hosts(hosts: list[Host]) -> None:
    for host in hosts:
        subprocess.run(["ip", "link", "del", host.root_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)


class TcpForward:
    """Forwards connections on (address, port) to a local service: PostgreSQL listens on loopback only."""

    def __init__(self, addresses: list[str], port: int, target: tuple[str, int]) -> None:
        self.addresses, self.port, self.target = addresses, port, target
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def start(self) -> None:
        self.thread.start()
        for address in self.addresses:
            asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, address, self.port), self.loop).result(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
