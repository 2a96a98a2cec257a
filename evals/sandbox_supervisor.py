"""The sandbox's supervisor: starts one program confined by the kernel, and leaves nothing behind.

:mod:`evals.sandbox` runs this file as a script (``python -I -S sandbox_supervisor.py CONFIG``,
standard library only) between itself and the untrusted program. The supervisor

- becomes a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): every process the program starts,
  daemonised ones included (``setsid``, double fork), is re-parented to it when its parent
  dies instead of escaping to ``init``;
- forks the program into its own process group with resource limits (address space, file
  size, CPU time, processes, open files), ``no_new_privs``, a seccomp filter that makes
  ``socket()`` fail (no network of any family, whatever the language or the library) and,
  where the kernel has Landlock, a filesystem rule set under which only the sandbox folder
  (and ``/dev/null``) is writable and signals cannot reach processes outside the sandbox;
- waits for the program with the timeout, then kills every process left (the program's group,
  then each remaining descendant, repeatedly, until none is left) and reports on a status pipe.
  ``SIGTERM`` (sent by the parent when the output cap is exceeded) ends the run the same way.

Functions here are also imported by :mod:`evals.sandbox` to probe what the kernel provides.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import select
import signal
import struct
import sys
import time

# --- seccomp: socket() fails ----------------------------------------------------------------

_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _PR_SET_CHILD_SUBREAPER = 1, 38, 22, 36
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
#: (audit arch, socket, io_uring_setup, first x32 syscall or None) per machine.
_ARCHES = {
    "x86_64": (0xC000003E, 41, 425, 0x40000000),
    "aarch64": (0xC00000B7, 198, 425, None),
}
_EACCES, _EPERM = 13, 1


def seccomp_supported() -> bool:
    """True on Linux machines whose syscall numbers the filter knows (x86_64, aarch64)."""
    return sys.platform.startswith("linux") and platform.machine() in _ARCHES


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def deny_network() -> None:
    """Install a seccomp filter on this process (inherited across fork and exec): ``socket()``
    fails with EACCES and ``io_uring_setup`` with EPERM (io_uring can open sockets without the
    syscall); syscalls of another ABI (i386 ``int 0x80``, x32) fail with EPERM. ``socketpair``
    (anonymous, in-process pairs) stays allowed."""
    arch, socket_nr, uring_nr, x32 = _ARCHES[platform.machine()]
    deny_socket, deny_other, allow = "deny_socket", "deny_other", "allow"
    # (code, jump-if-true label, jump-if-false label, k): labels resolved below.
    program: list[tuple] = [
        (_LD_ABS, 0, 0, 4),                        # seccomp_data.arch
        (_JEQ, None, deny_other, arch),
        (_LD_ABS, 0, 0, 0),                        # seccomp_data.nr
    ]
    if x32 is not None:
        program.append((_JGE, deny_other, None, x32))
    program += [
        (_JEQ, deny_socket, None, socket_nr),
        (_JEQ, deny_other, None, uring_nr),
        ("label", allow), (_RET, 0, 0, _RET_ALLOW),
        ("label", deny_socket), (_RET, 0, 0, _RET_ERRNO | _EACCES),
        ("label", deny_other), (_RET, 0, 0, _RET_ERRNO | _EPERM),
    ]
    labels, instructions = {}, []
    for item in program:
        if item[0] == "label":
            labels[item[1]] = len(instructions)
        else:
            instructions.append(item)
    packed = b""
    for index, (code, jt, jf, k) in enumerate(instructions):
        def offset(target):
            return 0 if target is None or isinstance(target, int) else labels[target] - index - 1
        packed += struct.pack("HBBI", code, offset(jt), offset(jf), k)
    buffer = ctypes.create_string_buffer(packed)
    fprog = struct.pack("HxxxxxxP", len(instructions), ctypes.addressof(buffer))
    libc = _libc()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0), "prctl(SECCOMP)")


# --- Landlock: writes only inside the sandbox folder ------------------------------------------

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same on x86_64 and aarch64
_WRITE_FILE, _TRUNCATE = 1 << 1, 1 << 14
#: remove dir/file, make char/dir/reg/sock/fifo/block/sym
_MAKE_AND_REMOVE = sum(1 << bit for bit in range(4, 13))
_REFER = 1 << 13
_SCOPE_SIGNAL = 1 << 1


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when Landlock is absent or disabled)."""
    if not sys.platform.startswith("linux") or platform.machine() not in _ARCHES:
        return 0
    version = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(version), 0)


def confine_writes(folder: str, abi: int) -> None:
    """Restrict this process (and what it starts) to writing beneath ``folder`` and to
    ``/dev/null``; reading is not restricted. From ABI 6 it also cannot signal processes
    outside its Landlock domain (the supervisor, the eval runner, the user's programs)."""
    handled = _WRITE_FILE | _MAKE_AND_REMOVE
    if abi >= 2:
        handled |= _REFER
    if abi >= 3:
        handled |= _TRUNCATE
    scoped = _SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", handled, 0, scoped)[: 24 if abi >= 6 else 8]
    libc = _libc()
    ruleset = _check(libc.syscall(_SYS_CREATE_RULESET, ctypes.c_char_p(attr), ctypes.c_size_t(len(attr)),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for path, allowed in ((folder, handled), ("/dev/null", handled & (_WRITE_FILE | _TRUNCATE))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = struct.pack("=Qi", allowed, fd)   # struct landlock_path_beneath_attr, packed
                _check(libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.c_char_p(rule),
                                    ctypes.c_uint32(0)), f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(ruleset)


# --- the supervisor -----------------------------------------------------------------------------

class _Stop(Exception):
    """SIGTERM from the parent: end the run now."""


def _on_sigterm(_signum, _frame):
    raise _Stop


def _children(pid: int) -> list[int]:
    """Live or zombie children of ``pid`` (subreaper: orphaned descendants become children)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(name))
    return found


def kill_descendants(group: int, limit_s: float = 10.0) -> int:
    """SIGKILL the process group ``group``, then every descendant until none is left; returns
    how many processes were killed outside the group (escapees: ``setsid``, double forks)."""
    me, escaped = os.getpid(), 0
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        children = _children(me)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
                escaped += child != group
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            if not _children(me):
                return escaped
        time.sleep(0.002)
    return escaped


def _task_count(uid: int) -> int:
    """Threads of ``uid`` now: what the kernel counts against RLIMIT_NPROC."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return count


def _start(config: dict) -> int:
    """Fork the program with its limits and confinement; returns its pid."""
    nproc_limit = _task_count(os.getuid()) + config["max_processes"]
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: nothing may return from here
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)   # the supervisor killed: so is the program
        limits = [(resource.RLIMIT_FSIZE, config["file_size_mb"] << 20), (resource.RLIMIT_CORE, 0),
                  (resource.RLIMIT_CPU, int(config["timeout_s"]) + 2), (resource.RLIMIT_NOFILE, 1024),
                  (resource.RLIMIT_NPROC, nproc_limit)]
        if config["memory_mb"] is not None:
            limits.append((resource.RLIMIT_AS, config["memory_mb"] << 20))
        for which, value in limits:
            resource.setrlimit(which, (value, value))
        if config["landlock_abi"]:
            confine_writes(config["folder"], config["landlock_abi"])
        if config["seccomp"]:
            deny_network()
        os.execve(config["argv"][0], config["argv"], os.environ)
    except BaseException as exc:  # noqa: BLE001 - report and leave; never run the parent's code
        os.write(2, f"sandbox: could not start {config['argv'][0]}: {exc}\n".encode())
    os._exit(127)


def supervise(config: dict) -> dict:
    """Run the program, enforce the timeout, clean up; the status the parent reads."""
    _check(_libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(CHILD_SUBREAPER)")
    signal.signal(signal.SIGTERM, _on_sigterm)
    pid = _start(config)
    status = {"returncode": None, "timeout": False, "stopped": False, "escaped": 0}
    try:
        poller = select.poll()
        watch = os.pidfd_open(pid)
        poller.register(watch, select.POLLIN)
        if poller.poll(config["timeout_s"] * 1000):
            _, code = os.waitpid(pid, 0)
            status["returncode"] = os.waitstatus_to_exitcode(code)
        else:
            status["timeout"] = True
    except _Stop:
        status["stopped"] = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    status["escaped"] = kill_descendants(pid)
    return status


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    report = os.fdopen(config["status_fd"], "w")
    os.set_inheritable(config["status_fd"], False)
    try:
        status = supervise(config)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line, never a traceback
        status = {"error": f"sandbox supervisor failed: {type(exc).__name__}: {exc}"}
    report.write(json.dumps(status))
    report.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
