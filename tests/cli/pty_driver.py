"""Run a command in a pseudo-terminal, as a user at a terminal would (tests/cli/pty_util.ts).

Usage: python3 pty_driver.py CWD COMMAND [ARGS...]
The command's terminal output is copied to stdout. Lines on stdin are actions:
  ctrlc    type Ctrl-C (the terminal sends SIGINT to the foreground process group)
  term     send SIGTERM to the command's process
  pgint    send SIGINT to the command's whole process group
  pgterm   send SIGTERM to the command's whole process group
  kill     send SIGKILL to the command's whole process group
When the command ends, the last line printed is "PTY-EXIT <code>" (128 + n for a signal n).
"""
import os
import pty
import select
import signal
import sys

cwd, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.chdir(cwd)
    os.execvp(argv[0], argv)

out = sys.stdout.buffer
stdin_open = True
while True:
    fds = [fd] + ([sys.stdin.fileno()] if stdin_open else [])
    ready, _, _ = select.select(fds, [], [], 0.05)
    if fd in ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        out.write(data)
        out.flush()
    if stdin_open and sys.stdin.fileno() in ready:
        line = sys.stdin.readline()
        if not line:
            stdin_open = False
        elif line.strip() == "ctrlc":
            os.write(fd, b"\x03")
        elif line.strip() == "term":
            os.kill(pid, signal.SIGTERM)
        elif line.strip() == "pgint":
            os.killpg(pid, signal.SIGINT)
        elif line.strip() == "pgterm":
            os.killpg(pid, signal.SIGTERM)
        elif line.strip() == "kill":
            os.killpg(pid, signal.SIGKILL)

_, status = os.waitpid(pid, 0)
code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
out.write(f"\nPTY-EXIT {code}\n".encode())
out.flush()
