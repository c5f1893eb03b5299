"""The ``gearadmin`` command: libgearman's admin tool, option for option, plus ``--shutdown[-graceful]``.

Options are read the way boost::program_options reads them for the C tool (``--opt value``, ``--opt=value``,
``-p4730``, unambiguous prefixes such as ``--stat``, each option at most once, other words ignored). The text
commands go out on one connection in the C tool's order, which is the reverse of its source order; each reply is
printed as the C tool prints it: ``OK`` as ``OK``, ``OK <value>`` as the value, ``ERR <text>`` as ``Error: <text>``
on stderr, listings verbatim.
"""

from __future__ import annotations

import socket
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from geartrain.client.transport import auth_option
from geartrain.errors import GearmanError
from geartrain.security.environment import libgearman_tls_from_environment, secret_from_environment

PROG = "gearadmin"
READ_TIMEOUT = 30.0  # seconds without a byte from the server before giving up on a reply
LISTINGS = frozenset({b"status", b"prioritystatus", b"workers", b"show jobs", b"show unique jobs"})


@dataclass(frozen=True)
class Option:
    name: str
    short: str | None
    takes_value: bool
    help: str
    value_hint: str = ""


OPTIONS = (
    Option("help", None, False, "Options related to the program."),
    Option("host", "h", True, "Connect to the host", " arg (=localhost)"),
    Option("port", "p", True, "Port number or service to use for connection", " arg (=4730)"),
    Option("server-version", None, False, "Fetch the version number for the server."),
    Option("server-verbose", None, False, "Fetch the verbose setting for the server."),
    Option("create-function", None, True, "Create the function from the server.", " arg"),
    Option("cancel-job", None, True, "Remove a given job from the server's queue", " arg"),
    Option("drop-function", None, True, "Drop the function from the server.", " arg"),
    Option("show-unique-jobs", None, False, "Show unique IDs of jobs on the server."),
    Option("show-jobs", None, False, "Show all jobs on the server."),
    Option("getpid", None, False, "Get Process ID for the server."),
    Option("status", None, False, "Status for the server."),
    Option("priority-status", None, False, "Queued jobs status by priority."),
    Option("workers", None, False, "Workers for the server."),
    Option("ssl", "S", False, "Enable SSL connections."),
    Option("shutdown", None, False, "Shut the server down (geartrain; gearmand answers ERR)."),
    Option("shutdown-graceful", None, False, "Stop accepting connections, finish the jobs, then exit (geartrain)."),
)
BY_NAME = {option.name: option for option in OPTIONS}
BY_SHORT = {option.short: option for option in OPTIONS if option.short}

# (option, command) in the order the C tool runs them: it pushes status first and pops the last pushed first.
# The shutdowns (not in the C tool) come last, when everything else has been answered.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("getpid", "getpid"),
    ("create-function", "create function {}"),
    ("drop-function", "drop function {}"),
    ("show-jobs", "show jobs"),
    ("show-unique-jobs", "show unique jobs"),
    ("cancel-job", "cancel job {}"),
    ("server-verbose", "verbose"),
    ("server-version", "version"),
    ("workers", "workers"),
    ("priority-status", "prioritystatus"),
    ("status", "status"),
    ("shutdown-graceful", "shutdown graceful"),
    ("shutdown", "shutdown"),
)

DIFFERENCES = """\
Differences from libgearman's gearadmin (deliberate):
  --shutdown and --shutdown-graceful are added (geartrain servers implement them; gearmand answers
  "Error: UNKNOWN_COMMAND ..."). A reply is read to its end by its framing (the C tool stops at the first 5 ms
  pause and can print half a listing); 30 s without a byte from the server is an error. A connection problem
  says which address failed and why. -S/--ssl connects with TLS, configured as libgearman's tools are by
  GEARMAND_CA_CERTIFICATE, GEARMAN_CLIENT_PEM and GEARMAN_CLIENT_KEY, and checks the server's name (Debian's C
  build ignores -S and talks in clear). GEARTRAIN_SECRET, when set, is presented to the server's access
  control before the first command. Exit status: 0 whenever the server answered (even ERR, as the C tool), 1 for a usage
  error or a connection problem.
"""


class UsageError(GearmanError):
    pass


@dataclass
class Parsed:
    values: dict[str, str | None] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values


def _long(token: str) -> tuple[Option, str | None]:
    name, equals, value = token[2:].partition("=")
    option = BY_NAME.get(name)
    if option is None:
        matches = sorted(candidate for candidate in BY_NAME if candidate.startswith(name)) if name else []
        if len(matches) > 1:
            quoted = [f"'--{match}'" for match in matches]
            listed = ", ".join(quoted[:-1]) + ", and " + quoted[-1]  # boost's wording, even for two
            raise UsageError(f"option '--{name}' is ambiguous and matches {listed}")
        if not matches:
            raise UsageError(f"unrecognised option '{token}'")
        option = BY_NAME[matches[0]]
    if equals:
        if not value:
            raise UsageError(
                f"the argument for option '--{option.name}' should follow immediately after the equal sign"
            )
        if not option.takes_value:
            raise UsageError(f"option '--{option.name}' does not take any arguments")
        return option, value
    return option, None


def parse_options(argv: Sequence[str]) -> Parsed:
    """boost::program_options' reading of the C tool's options; raises :class:`UsageError` with its message."""
    parsed = Parsed()
    index = 0
    positional_only = False
    while index < len(argv):
        token = argv[index]
        index += 1
        if positional_only or not token.startswith("-") or token == "-":
            continue  # the C tool declares no positional options and ignores such words
        if token == "--":
            positional_only = True
            continue
        value: str | None
        if token.startswith("--"):
            if token.startswith("---"):
                raise UsageError(f"unrecognised option '{token}'")
            option, value = _long(token)
        else:
            option = BY_SHORT.get(token[1])  # type: ignore[assignment]
            if option is None or (len(token) > 2 and not option.takes_value):
                raise UsageError(f"unrecognised option '{token}'")
            value = token[2:] or None
        if option.takes_value and value is None:
            if index >= len(argv):
                raise UsageError(f"the required argument for option '--{option.name}' is missing")
            value = argv[index]
            index += 1
        if option.name in parsed.values:
            raise UsageError(f"option '--{option.name}' cannot be specified more than once")
        parsed.values[option.name] = value
    return parsed


def options_description() -> str:
    """The ``Options:`` block as boost formats it (with the C tool's defaults shown)."""
    rows = []
    for option in OPTIONS:
        flags = f"-{option.short} [ --{option.name} ]" if option.short else f"--{option.name}"
        rows.append((f"  {flags}{option.value_hint}", option.help))
    width = max(len(left) for left, _ in rows) + 1
    return "Options:\n" + "".join(f"{left.ljust(width)}{text}\n" for left, text in rows)


def _print_reply(reply: bytes) -> None:
    """As the C tool's Finish callback: OK / OK value / ERR text / anything else verbatim."""
    out = sys.stdout.buffer
    if reply[:3] == b"OK\r":
        out.write(b"OK\n")
    elif reply[:3] == b"OK ":
        out.write(reply[3:])
    elif reply[:4] == b"ERR ":
        sys.stdout.flush()
        out.flush()
        sys.stderr.buffer.write(b"Error: " + reply[4:])
        sys.stderr.buffer.flush()
        return
    else:
        out.write(reply)
    out.flush()


class _Connection:
    def __init__(self, host: str, port: str, tls: ssl.SSLContext | None = None, secret: str | None = None) -> None:
        self.host = host
        self.port = port
        self.buffer = b""
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise ConnectionError(f"cannot resolve {host}:{port}: {exc.strerror}") from None
        failures = []
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            sock.settimeout(READ_TIMEOUT)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                failures.append(exc.strerror or str(exc))
                continue
            try:
                self.sock = tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
                if secret is not None:
                    self._authenticate(secret)
            except (OSError, ConnectionError) as exc:
                sock.close()
                failures.append(str(exc))
                continue
            return
        reasons = ", ".join(dict.fromkeys(failures))
        raise ConnectionError(f"cannot connect to {host}:{port}: {reasons}")

    def _authenticate(self, secret: str) -> None:
        # OPTION_REQ "auth=<secret>" (type 26) as a binary packet; the server reads text lines after it.
        body = auth_option(secret)
        self.sock.sendall(b"\0REQ" + (26).to_bytes(4, "big") + len(body).to_bytes(4, "big") + body)
        header = self._exactly(12)
        body = self._exactly(int.from_bytes(header[8:12], "big"))
        if header[4:8] == (19).to_bytes(4, "big") and not body.startswith(b"UNKNOWN_OPTION\0"):  # ERROR
            raise ConnectionError(
                "the server refused the secret: " + body.replace(b"\0", b": ").decode(errors="replace")
            )

    def _exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _line(self) -> bytes:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise ConnectionError(f"no reply from {self.host}:{self.port} in {READ_TIMEOUT:g} s") from None
            except OSError as exc:
                raise ConnectionError(f"error reading from {self.host}:{self.port}: {exc.strerror}") from None
            if not chunk:
                raise ConnectionError(f"{self.host}:{self.port} closed the connection while replying")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def ask(self, command: bytes) -> bytes:
        """Send one command with ``\\r\\n`` and return its whole reply: a listing up to its ``.`` line, else one
        line (an ``ERR`` line also ends a listing)."""
        try:
            self.sock.sendall(command + b"\r\n")
        except OSError as exc:
            raise ConnectionError(f"error sending to {self.host}:{self.port}: {exc.strerror}") from None
        reply = self._line()
        if command not in LISTINGS or reply.startswith(b"ERR "):
            return reply
        while reply.rstrip(b"\r\n") != b"." and not reply.endswith(b"\n.\n") and not reply.endswith(b"\n.\r\n"):
            reply += self._line()
        return reply

    def close(self) -> None:
        self.sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``gearadmin`` entry point."""
    name = sys.argv[0] if sys.argv and sys.argv[0] else PROG
    try:
        parsed = parse_options(sys.argv[1:] if argv is None else argv)
        if parsed.has("shutdown") and parsed.has("shutdown-graceful"):
            raise UsageError("options '--shutdown' and '--shutdown-graceful' cannot be used together")
    except UsageError as exc:
        sys.stdout.write(f"{name} : {exc}\n\n{options_description()}\n")
        return 1
    if parsed.has("help"):
        sys.stdout.write(f"{options_description()}\n{DIFFERENCES}")
        return 0
    operations = [(option, command) for option, command in OPERATIONS if parsed.has(option)]
    if not operations:
        sys.stdout.write(f"No option execution operation given.\n\n{options_description()}\n")
        return 1
    host = parsed.values.get("host") or "localhost"
    port = parsed.values.get("port") or "4730"
    try:
        tls = libgearman_tls_from_environment() if parsed.has("ssl") else None
    except GearmanError as exc:
        sys.stderr.write(f"Error: -S/--ssl: {exc}\n")
        return 1
    try:
        connection = _Connection(host, port, tls, secret_from_environment())
        try:
            for option, command in operations:
                line = command.format(parsed.values[option]).encode("utf-8", "surrogateescape")
                _print_reply(connection.ask(line))
        finally:
            connection.close()
    except ConnectionError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
